"""λ decide: every minute a poll of the due index hands it the profiles whose triggers are due; it decides each
customer's next best message and queues it for delivery."""

from datetime import timedelta
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws import batch
from nextbest.aws.queues import DeadLetters, Queue
from nextbest.aws.scheduler import Scheduler
from nextbest.aws.secrets import signing_key
from nextbest.aws.store import Store
from nextbest.core import clock
from nextbest.core.campaigns import load_campaigns, load_policy, with_holdout_floor
from nextbest.core.commands import DueProfile, Poll, Release, decide_command
from nextbest.core.coupons import POOL_EMPTY, Issuer
from nextbest.core.decision import Decision
from nextbest.core.events import RejectedEvent
from nextbest.core.messages import check_creatives
from nextbest.core.ports import Retry
from nextbest.core.settings import DecideSettings
from nextbest.decide.live import load_live_policy
from nextbest.decide.scoring import load_models
from nextbest.decide.service import Decider
from pydantic import ValidationError

settings = DecideSettings.from_env()
logger = Logger()
metrics = Metrics()
campaigns_dir = Path(__file__).parent / settings.campaigns_dir
models = load_models(settings.models_dir)
store = Store(settings.table_name)
coupon_key = (lambda: signing_key(settings.coupon_secret_arn)) if settings.coupon_secret_arn else None
decider = Decider(
    store=store,
    deliver={channel: Queue(url) for channel, url in settings.deliver_queue_urls.items()},
    decide_queue=Queue(settings.decide_queue_url),
    scheduler=Scheduler(settings.schedule_group, settings.decide_queue_arn, settings.scheduler_role_arn),
    campaigns=with_holdout_floor(check_creatives(load_campaigns(campaigns_dir)), settings.holdout_floor_percent),
    policy=load_policy(campaigns_dir),
    site_url=settings.site_url,
    models=models,
    live=load_live_policy(settings.policy_dir),
    arm_counts_ttl=timedelta(seconds=settings.arm_counts_ttl_s),
    cart_url=settings.cart_url,
    coupons=Issuer(store, coupon_key),
)
dead_letters = DeadLetters(settings.dead_letter_queue_url)
redelivery = batch.Redelivery()


def _count(decision: Decision) -> None:
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Decisions_{decision.action}", unit=MetricUnit.Count, value=1)
    if any(c.reason == POOL_EMPTY for c in decision.candidates):  # a pool campaign out of codes (an alarm)
        metrics.add_metric(name="CouponPoolEmpty", unit=MetricUnit.Count, value=1)
    if decision.action == "send":
        metrics.add_metric(name="DecisionsToSend", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=f"DecisionsToSend_{decision.channel}", unit=MetricUnit.Count, value=1)
    logger.info(
        "decided",
        extra={
            "decision_id": decision.decision_id,
            "trigger": decision.trigger,
            "action": decision.action,
            "campaign": decision.campaign_id,
            "variant": decision.variant,
            "group": decision.group,
        },
    )


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    decider.store.forget()

    def record(sqs_record: SQSRecord) -> int:
        try:
            command = decide_command.validate_json(sqs_record.body)
        except ValidationError:
            raise RejectedEvent(
                "bad_due_trigger",
                "expected {profile_key, trigger, due_at}, {profile_key}, {poll_at} or {decision_id}",
            ) from None
        if isinstance(command, Poll):
            found = decider.poll(command)
            metrics.add_metric(name="DueProfiles", unit=MetricUnit.Count, value=found)
            return found
        if isinstance(command, DueProfile):
            made = decider.due(command, clock.now())
            for decision in made:
                _count(decision)
            return len(made)
        if isinstance(command, Release):
            released = decider.release(command, clock.now())
            metrics.add_metric(name=f"Release_{released}", unit=MetricUnit.Count, value=1)
            logger.info("release", extra={"decision_id": command.decision_id, "outcome": released})
            return int(released == "queued")
        decision = decider.handle(command, clock.now())
        if decision is not None:
            _count(decision)
        return int(decision is not None)

    return batch.process(
        event, context, record, dead_letters, logger, metrics, backoff_on=(Retry,), redelivery=redelivery
    )
