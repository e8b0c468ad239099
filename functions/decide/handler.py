"""λ decide: when a trigger's schedule fires, decide the customer's next best message and queue it."""

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import ValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from nextbest import batch, clock
from nextbest.campaigns import load_campaigns
from nextbest.decisioning import decide_for
from nextbest.events import RejectedEvent
from nextbest.queues import DeadLetters, Queue
from nextbest.settings import DecideSettings
from nextbest.store import Store
from nextbest.triggers import DueTrigger

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
    store.forget()

    def record(sqs_record: SQSRecord) -> int:
        try:
            due = DueTrigger.model_validate_json(sqs_record.body)
        except ValidationError:
            raise RejectedEvent("bad_due_trigger", "expected {profile_key, trigger, due_at}") from None
        decisions = decide_for(store, deliver, campaigns, due.profile_key, clock.now(), settings.site_url)
        for decision in decisions:
            metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
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
                },
            )
        return len(decisions)

    return batch.process(event, context, record, dead_letters, logger, metrics)
