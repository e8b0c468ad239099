"""decide: a poll of the due index every minute (an EventBridge Scheduler rate schedule per shard) and the alarms
quiet hours set wake the decide function through its queue; it decides and queues each message for deliver.

The live targeting policy, when there is one, ships in the ML layer beside the models: the directory named by the
``policyDir`` context (``cdk deploy -c policyDir=policy``), else ``policy/`` at the repository's root if it holds a
policy. It is verified at synth (a tampered, unpromoted or unpinned policy fails the deploy rather than the cold
start) and again by decide at cold start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.aws.store import BY_DUE
from nextbest.core.due import DUE_SHARDS, POLL_EVERY
from nextbest.core.events import Channel
from nextbest.core.settings import DecideSettings
from nextbest.decide.live import LivePolicy

from infra import assets
from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import ContextError, Shared, context_number, work_queue

TABLE_ACCESS = TableAccess(
    # profile: BatchGetItem; arm_counts (the campaign's counter items) and decision (one already made with this
    # id: its record and body): Query; commit_decision: a transaction of Puts (the decision, its body) and an
    # Update (the profile); lease (a block of a cap or budget): UpdateItem, returning the count on a refusal;
    # claim_coupon: a transaction deleting a code from its pool and putting the claim and the code's used mark
    actions=("Query", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"),
    queries=(BY_DUE,),  # the minute's poll reads the profiles due
)


class Decide(Construct):
    """The due-triggers queue, the poll of the due index, the schedule group quiet hours' alarms are armed in and
    the decide function, the only one carrying the ML layer."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        shared: Shared,
        table: dynamodb.Table,
        deliver_queues: dict[Channel, sqs.Queue],
        site_url: str,
        campaigns: Path,
    ) -> None:
        super().__init__(scope, id)
        timeout = cdk.Duration.seconds(60)
        self.queue, self.dead_letters = work_queue(self, "DueTriggers", timeout)
        self.schedule_group = scheduler.ScheduleGroup(self, "Alarms")
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            # on behalf of this account's schedules only
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Stack.of(self).account}},
            ),
            description="Lets EventBridge Scheduler put due triggers on the decide queue",
        )
        self.queue.grant_send_messages(self.scheduler_role)
        self.poll = self._poll()
        self.policy = self._live_policy()
        self.ml_layer = self._ml_layer()
        self.coupon_key = secretsmanager.Secret(
            self,
            "CouponKey",
            description="HMAC key of nextbest's signed coupon codes (the shop's checkout verifies them with it)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True),
            removal_policy=cdk.RemovalPolicy.RETAIN,  # codes in inboxes stay verifiable if the stack is replaced
        )
        self.function = shared.function(
            self,
            "decide",
            DecideSettings,
            table=table,
            table_access=TABLE_ACCESS,
            queues=[self.queue],
            dead_letters=self.dead_letters,
            timeout=timeout,
            memory=1024,
            code=assets.function_code("decide", {"campaigns": campaigns}),
            deliver_queue_urls={channel: queue.queue_url for channel, queue in deliver_queues.items()},
            site_url=site_url,
            cart_url=str(self.node.try_get_context("cartUrl") or ""),
            campaigns_dir="campaigns",
            models_dir=assets.MODELS_MOUNT,
            policy_dir=assets.POLICY_MOUNT if self.policy is not None else "",
            holdout_floor_percent=self._holdout_floor(),
            extra_layers=(self.ml_layer,),
            decide_queue_url=self.queue.queue_url,
            coupon_secret_arn=self.coupon_key.secret_arn,
            **self.scheduling(),
        )
        self.coupon_key.grant_read(self.function)
        for queue in deliver_queues.values():
            queue.grant_send_messages(self.function)
        self.queue.grant_send_messages(self.function)
        self.allow_arming(self.function)

    def _poll(self) -> list[scheduler.Schedule]:
        """Every minute, decide reads the due index for the profiles whose triggers are due
        (``nextbest.core.due``): a schedule per shard of the index for every customer, instead of one per customer
        and trigger. One per shard, not one for all: the shards of a busy minute (a flash sale's carts) are read by
        as many invocations at once, each paging through one shard, so a minute's work is not one function's."""
        return [
            scheduler.Schedule(
                self,
                f"Poll{shard}",
                schedule=scheduler.ScheduleExpression.rate(cdk.Duration.minutes(int(POLL_EVERY.total_seconds() // 60))),
                description=f"Wakes decide to hand over the profiles of due-index shard {shard} whose triggers are due",
                target=scheduler_targets.SqsSendMessage(
                    self.queue,
                    role=self.scheduler_role,
                    input=scheduler.ScheduleTargetInput.from_object(
                        {"poll_at": scheduler.ContextAttribute.scheduled_time, "shard": shard}
                    ),
                ),
            )
            for shard in range(DUE_SHARDS)
        ]

    def _live_policy(self) -> Path | None:
        """The live policy's directory, verified, or None (decide ranks by expected value)."""
        given = self.node.try_get_context("policyDir")
        directory = Path(str(given)) if given else assets.ROOT / "policy"
        if not directory.is_absolute():
            directory = assets.ROOT / directory
        if not (directory / "manifest.json").is_file():
            if given:
                raise ContextError(f"context policyDir={given}: no policy there (no manifest.json)")
            return None
        LivePolicy.load(directory)  # raises ModelError saying what is wrong
        return directory

    def _ml_layer(self) -> lambda_.LayerVersion:
        """Only decide scores, so only decide carries numpy, the model files and the live policy."""
        return lambda_.LayerVersion(
            self,
            "MlLayer",
            code=assets.ml_layer_code(policy=self.policy),
            compatible_runtimes=[assets.RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="numpy for arm64, the verified model set (/opt/models) and the live policy (/opt/policy)",
        )

    def _holdout_floor(self) -> float:
        """Context ``holdoutFloorPercent`` (0-50): every campaign holds out at least this share of its audience."""
        percent = context_number(self, "holdoutFloorPercent", 0.0)
        if not 0 <= percent <= 50:
            raise ContextError(f"context holdoutFloorPercent={percent:g}: give a number from 0 to 50")
        return percent

    def scheduling(self) -> dict[str, Any]:
        """What decide needs to arm the alarms of quiet-hour deferrals."""
        return {
            "schedule_group": self.schedule_group.schedule_group_name,
            "decide_queue_arn": self.queue.queue_arn,
            "scheduler_role_arn": self.scheduler_role.role_arn,
        }

    def allow_arming(self, function: lambda_.Function) -> None:
        self.schedule_group.grant_write_schedules(function)
        self.scheduler_role.grant_pass_role(function.grant_principal)
