"""λ deliver: send each queued decision once, by SES e-mail, SMS or SNS push, if consent still allows it.

Each channel has its own queue (a provider's throttling holds up no other channel). A request the provider
throttles is kept: queued again on its own queue, delayed, as a new message, so an hour of throttling costs
receives of no message toward the dead-letter queue; once one send of a batch is throttled, the rest of the batch
waits the same way without calling the provider.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws import batch
from nextbest.aws.queues import DeadLettersBySource, Queue
from nextbest.aws.secrets import signing_key
from nextbest.aws.senders import EndUserMessagingSms, SesEmail, SnsPush, SnsSms
from nextbest.aws.store import Store
from nextbest.core.commands import DeliveryRequest
from nextbest.core.events import RejectedEvent
from nextbest.core.ports import Outbox, Retry, SmsSender, Throttled
from nextbest.core.settings import DeliverSettings
from nextbest.deliver.service import deliver
from pydantic import ValidationError

settings = DeliverSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
dead_letters = DeadLettersBySource(settings.dead_letter_queue_urls)
email = SesEmail(
    settings.sender,
    settings.configuration_set,
    settings.unsubscribe_url,
    lambda: signing_key(settings.signing_secret_arn),
)
sms: SmsSender = EndUserMessagingSms(settings.sms_configuration_set) if settings.sms_configuration_set else SnsSms()
push = SnsPush(settings.push_platform_application_arn) if settings.push_platform_application_arn else None
decide = Queue(settings.decide_queue_url)
redelivery = batch.Redelivery()


def own_queue(queue_arn: str) -> Outbox:
    """The delivery queue a record came from: a throttled request goes back to it."""
    return Queue(batch.queue_url(queue_arn))


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    slowed: list[Throttled] = []
    """The provider's throttling met in this batch (its records all come from one channel's queue)."""

    def record(sqs_record: SQSRecord) -> str:
        try:
            request = DeliveryRequest.model_validate_json(sqs_record.body)
        except ValidationError:
            raise RejectedEvent("bad_delivery_request", 'body must be {"decision_id": …}') from None
        decision_id = request.decision_id
        try:
            if slowed:
                raise slowed[0]
            result = deliver(store, decision_id, email, sms, push, decide, request.send_before, sqs_record.message_id)
        except Throttled as throttled:
            slowed[:1] = [throttled]
            return later(sqs_record, request, throttled)
        metrics.add_metric(name=f"Delivery_{result.outcome}", unit=MetricUnit.Count, value=1)
        if result.outcome == "sent":  # per channel, for the dashboard's decisions-vs-sends and the alarms
            metrics.add_metric(name=f"Sent_{result.channel}", unit=MetricUnit.Count, value=1)
        logger.info(
            "delivery",
            extra={
                "decision_id": decision_id,
                "outcome": result.outcome,
                "reason": result.reason,
                "channel": result.channel,
            },
        )
        return result.outcome

    return batch.process(
        event, context, record, dead_letters, logger, metrics, backoff_on=(Retry,), redelivery=redelivery
    )


def later(sqs_record: SQSRecord, request: DeliveryRequest, throttled: Throttled) -> str:
    """Queue the request again on its own queue, as a new message delayed by a backoff that grows with each
    throttling (the longest SQS allows when the daily quota is spent), and report this one done. deliver put the
    decision back to ``queued`` first, so the new request may send it, once; ``send_before`` rides along."""
    again = request.model_copy(update={"throttled": request.throttled + 1})
    delay = batch.BACKOFF_CAP_SECONDS if throttled.daily else batch.backoff_seconds(again.throttled)
    own_queue(sqs_record.event_source_arn).send(again.model_dump_json(exclude_defaults=True), delay_seconds=delay)
    metrics.add_metric(name="Delivery_throttled", unit=MetricUnit.Count, value=1)
    logger.info(
        "delivery",
        extra={"decision_id": request.decision_id, "outcome": "throttled", "reason": str(throttled), "delay_s": delay},
    )
    return "throttled"
