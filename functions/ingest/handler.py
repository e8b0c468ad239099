"""λ ingest: behavioural and consent events from the bus → validated → merged into profiles."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest import batch, clock
from nextbest.events import EventDetail, RejectedEvent, parse_event
from nextbest.ingest import ingest
from nextbest.profiles import identity_keys
from nextbest.queues import DeadLetters
from nextbest.settings import IngestSettings
from nextbest.store import Store
from nextbest.triggers import DueTrigger, Scheduler, disarm

settings = IngestSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
dead_letters = DeadLetters(settings.dead_letter_queue_url)
delays = settings.delays()
scheduler = Scheduler(settings.schedule_group, settings.decide_queue_arn, settings.scheduler_role_arn)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    store.forget()
    parsed: dict[str, tuple[str, EventDetail] | RejectedEvent] = {}
    for raw in event["Records"]:
        try:
            parsed[raw["messageId"]] = parse_event(raw["body"], clock.now())
        except RejectedEvent as rejection:
            parsed[raw["messageId"]] = rejection
    # One BatchGetItem for every identifier in the batch; the per-record writes then read from it.
    store.prefetch(
        k for p in parsed.values() if not isinstance(p, RejectedEvent) for k in identity_keys(p[1].identifiers())
    )

    def record(sqs_record: SQSRecord) -> str:
        result = parsed[sqs_record.message_id]
        if isinstance(result, RejectedEvent):
            raise result
        kind, detail = result
        outcome = ingest(store, kind, detail, delays)
        for trigger, due_at in outcome.arm.items():
            scheduler.arm(DueTrigger(profile_key=outcome.profile_key, trigger=trigger, due_at=due_at))
        for key in outcome.erased_keys:
            disarm(scheduler, key, sorted(outcome.disarm))
        metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=1)
        if outcome.merged:
            metrics.add_metric(name="IdentityMerges", unit=MetricUnit.Count, value=outcome.merged)
        logger.debug(
            "event ingested",
            extra={"detail_type": kind, "outcome": outcome.outcome, "merged": outcome.merged},
        )
        return outcome.outcome

    return batch.process(event, context, record, dead_letters, logger, metrics)
