"""λ decide: on each scheduled sweep, decide the next best message for every customer whose trigger is due."""

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest import batch, clock
from nextbest.campaigns import load_campaigns
from nextbest.decisioning import sweep
from nextbest.events import RejectedEvent
from nextbest.queues import DeadLetters, Queue
from nextbest.settings import DecideSettings
from nextbest.store import Store
from pydantic import ValidationError

settings = DecideSettings.from_env()
logger = Logger()
metrics = Metrics()
store = Store(settings.table_name)
deliver = Queue(settings.deliver_queue_url)
dead_letters = DeadLetters(settings.dead_letter_queue_url)
campaigns = load_campaigns(Path(__file__).parent / settings.campaigns_dir)


@logger.inject_lambda_context(correlation_id_path="Records[0].messageId")
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record(sqs_record: SQSRecord) -> int:
        try:
            EventBridgeModel.model_validate_json(sqs_record.body)
        except ValidationError:
            raise RejectedEvent("not_a_schedule_tick", "decide only takes EventBridge scheduled events") from None
        store.forget()
        decisions = sweep(store, deliver, campaigns, clock.now(), settings.site_url)
        sends = sum(1 for d in decisions if d.action == "send")
        metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=len(decisions))
        metrics.add_metric(name="DecisionsToSend", unit=MetricUnit.Count, value=sends)
        logger.info("sweep done", extra={"decisions": len(decisions), "sends": sends})
        return len(decisions)

    return batch.process(event, context, record, dead_letters, logger, metrics)
