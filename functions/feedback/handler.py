"""λ feedback: SES events, SMS delivery events and replies, push delivery failures → profiles and fallbacks."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest.aws import batch
from nextbest.aws.queues import DeadLetters, Queue
from nextbest.aws.store import Store
from nextbest.core import clock
from nextbest.core.settings import FeedbackSettings
from nextbest.feedback import service as feedback
from nextbest.feedback.notifications import InboundSms, PushFailure, SesEvent, TextEvent, parse

settings = FeedbackSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
decide = Queue(settings.decide_queue_url)
dead_letters = DeadLetters(settings.dead_letter_queue_url)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record(sqs_record: SQSRecord) -> str:
        match parse(sqs_record.body):
            case InboundSms() as reply:
                effect = feedback.handle_reply(store, reply, clock.now()).effect
                metrics.add_metric(name="Feedback_SmsReply", unit=MetricUnit.Count, value=1)
                logger.info("sms reply", extra={"effect": effect})
                return effect
            case TextEvent() as text:
                result = feedback.handle_text(store, decide, text)
                kind, decision_id = text.event_type, text.context.get("decision_id")
            case PushFailure() as failure:
                result = feedback.handle_push_failure(store, decide, failure)
                kind, decision_id = f"Push{failure.failure_type}", None
            case SesEvent() as ses:
                result = feedback.handle(store, decide, ses)
                kind, decision_id = ses.event_type.replace(" ", ""), ses.decision_id
        metrics.add_metric(name=f"Feedback_{kind}", unit=MetricUnit.Count, value=1)
        logger.info("feedback", extra={"event_type": kind, "effect": result.effect, "decision_id": decision_id})
        return result.effect

    return batch.process(event, context, record, dead_letters, logger, metrics)
