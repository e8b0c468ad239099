"""λ deliver: send each queued decision once, by SES e-mail, SMS or SNS push, if consent still allows it."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws import batch
from nextbest.aws.queues import DeadLetters, Queue
from nextbest.aws.secrets import signing_key
from nextbest.aws.senders import EndUserMessagingSms, SesEmail, SnsPush, SnsSms
from nextbest.aws.store import Store
from nextbest.core.commands import DeliveryRequest
from nextbest.core.events import RejectedEvent
from nextbest.core.ports import Retry, SmsSender
from nextbest.core.settings import DeliverSettings
from nextbest.deliver.service import deliver
from pydantic import ValidationError

settings = DeliverSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
dead_letters = DeadLetters(settings.dead_letter_queue_url)
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


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record(sqs_record: SQSRecord) -> str:
        try:
            request = DeliveryRequest.model_validate_json(sqs_record.body)
        except ValidationError:
            raise RejectedEvent("bad_delivery_request", 'body must be {"decision_id": …}') from None
        decision_id = request.decision_id
        result = deliver(store, decision_id, email, sms, push, decide, request.send_before, sqs_record.message_id)
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
