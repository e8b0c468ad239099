"""SQS batches the way every nextbest function handles them.

Built on powertools' BatchProcessor: a record that raises is reported as a partial batch failure and
retried by SQS (then redriven to the DLQ after maxReceiveCount); a record that can *never* succeed
(:class:`RejectedEvent`) goes straight to the DLQ with its reason, and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from nextbest.events import RejectedEvent
from nextbest.queues import DeadLetters


def process(
    event: dict[str, Any],
    context: Any,
    handle: Callable[[SQSRecord], Any],
    dead_letters: DeadLetters,
    logger: Logger,
    metrics: Metrics,
) -> dict[str, Any]:
    def record_handler(record: SQSRecord) -> Any:
        try:
            return handle(record)
        except RejectedEvent as rejection:
            source = record.event_source_arn.rsplit(":", 1)[-1]
            dead_letters.reject(record.body, rejection.reason, rejection.message, source)
            metrics.add_metric(name=f"Rejected_{rejection.reason}", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="Rejected", unit=MetricUnit.Count, value=1)  # every reason: what alarms read
            logger.warning(
                "record rejected",
                extra={
                    "reason": rejection.reason,
                    "detail": rejection.message,
                    "message_id": record.message_id,
                },
            )
            return "rejected"

    return process_partial_response(  # type: ignore[return-value]
        event=event,
        record_handler=record_handler,
        processor=BatchProcessor(event_type=EventType.SQS),
        context=context,
    )
