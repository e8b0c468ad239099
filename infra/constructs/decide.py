"""decide: a poll of the due index every minute (one EventBridge Scheduler rate schedule) and the alarms quiet hours
set wake the decide function through its queue; it decides and queues each message for deliver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from nextbest.aws.store import BY_DUE
from nextbest.core.due import POLL_EVERY
from nextbest.core.events import Channel
from nextbest.core.settings import DecideSettings

from infra import assets
from infra.constructs.profile_store import TableAccess
from infra.constructs.shared import Shared, work_queue

TABLE_ACCESS = TableAccess(
    # profile: BatchGetItem; arm_counts (the campaign's counter items) and decision (one already made with this
    # id: its record and body): Query; commit_decision: a transaction of Puts (the decision, its body) and an
    # Update (the profile); lease (a block of a cap or budget): UpdateItem, returning the count on a refusal
    actions=("Query", "BatchGetItem", "PutItem", "UpdateItem"),
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
        self.ml_layer = self._ml_layer()
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
            campaigns_dir="campaigns",
            models_dir=assets.MODELS_MOUNT,
            extra_layers=(self.ml_layer,),
            decide_queue_url=self.queue.queue_url,
            **self.scheduling(),
        )
        for queue in deliver_queues.values():
            queue.grant_send_messages(self.function)
        self.queue.grant_send_messages(self.function)
        self.allow_arming(self.function)

    def _poll(self) -> scheduler.Schedule:
        """Every minute, decide reads the due index for the profiles whose triggers are due
        (``nextbest.core.due``): one schedule for every customer, instead of one per customer and trigger."""
        return scheduler.Schedule(
            self,
            "Poll",
            schedule=scheduler.ScheduleExpression.rate(cdk.Duration.minutes(int(POLL_EVERY.total_seconds() // 60))),
            description="Wakes decide to hand over the profiles whose triggers are due",
            target=scheduler_targets.SqsSendMessage(
                self.queue,
                role=self.scheduler_role,
                input=scheduler.ScheduleTargetInput.from_object({"poll_at": scheduler.ContextAttribute.scheduled_time}),
            ),
        )

    def _ml_layer(self) -> lambda_.LayerVersion:
        """Only decide scores, so only decide carries numpy and the model files."""
        return lambda_.LayerVersion(
            self,
            "MlLayer",
            code=assets.ml_layer_code(),
            compatible_runtimes=[assets.RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="numpy for arm64 and the verified model set (/opt/models)",
        )

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
