"""SQS batches the way every nextbest function handles them.

Built on powertools' BatchProcessor: a record that raises is reported as a partial batch failure and
retried by SQS (then redriven to the DLQ after maxReceiveCount); a record that can *never* succeed
(:class:`RejectedEvent`) goes straight to the DLQ with its reason, and the batch goes on.

A record whose handler raises one of ``backoff_on`` (a provider said "slow down") fails the same way, but
first its visibility timeout is set to an exponential, jittered delay that grows with the number of times
SQS has delivered it: the queue itself is the retry loop, nothing waits inside the function, nothing is lost.

A record that still fails on its last delivery (``MAX_RECEIVE_COUNT``) is dead-lettered by the function, with
the reason it failed (``failed_after_retries``, ``throttled_after_retries``) and the exception's type and
error code, instead of being moved there by SQS's redrive policy with no reason. A batch whose every record
failed is reported like any other (no invocation error): its records come back after their backoff either way.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from nextbest.aws import clients as aws
from nextbest.aws.queues import DeadLetters, DeadLettersBySource
from nextbest.core.events import RejectedEvent
from nextbest.core.settings import MAX_RECEIVE_COUNT

BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 900
"""Throttling clears in seconds to minutes; beyond 15 minutes a later attempt is no likelier to succeed."""


def backoff_seconds(receive_count: int, rand: Callable[[], float] = random.random) -> int:
    """How long a throttled message stays invisible: base·2^(n-1), capped, with "equal jitter" (half fixed,
    half random) so a burst throttled together does not come back together."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(receive_count - 1, 0))
    return int(ceiling / 2 + rand() * ceiling / 2)


def queue_url(queue_arn: str) -> str:
    """The URL of a queue from its ARN (``arn:<partition>:sqs:<region>:<account>:<name>``)."""
    _, partition, _, region, account, name = queue_arn.split(":", 5)
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{suffix}/{account}/{name}"


class Redelivery:
    """Postpones a received message's next delivery (its visibility timeout): the queue is the retry loop."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")

    def postpone(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=queue_url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )


def process(
    event: dict[str, Any],
    context: Any,
    handle: Callable[[SQSRecord], Any],
    dead_letters: DeadLetters | DeadLettersBySource,
    logger: Logger,
    metrics: Metrics,
    backoff_on: tuple[type[Exception], ...] = (),
    rand: Callable[[], float] = random.random,
    redelivery: Redelivery | None = None,
) -> dict[str, Any]:
    def reject(record: SQSRecord, reason: str, detail: str) -> str:
        source = record.event_source_arn.rsplit(":", 1)[-1]
        dead_letters.reject(record.body, reason, detail, source)
        metrics.add_metric(name=f"Rejected_{reason}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Rejected", unit=MetricUnit.Count, value=1)  # every reason: what alarms read
        logger.warning("record rejected", extra={"reason": reason, "detail": detail, "message_id": record.message_id})
        return "rejected"

    def record_handler(record: SQSRecord) -> Any:
        receives = int(record.attributes.approximate_receive_count or 1)
        try:
            return handle(record)
        except RejectedEvent as rejection:
            return reject(record, rejection.reason, rejection.message)
        except backoff_on as slow_down:
            if receives >= MAX_RECEIVE_COUNT:
                return reject(record, "throttled_after_retries", _described(slow_down))
            delay = backoff_seconds(receives, rand)
            (redelivery or Redelivery()).postpone(record.event_source_arn, record.receipt_handle, delay)
            metrics.add_metric(name="BackedOff", unit=MetricUnit.Count, value=1)
            logger.warning(
                "backing off",
                extra={
                    "reason": str(slow_down),
                    "receives": receives,
                    "delay_s": delay,
                    "message_id": record.message_id,
                },
            )
            raise
        except Exception as error:
            if receives >= MAX_RECEIVE_COUNT:
                logger.exception("giving up on a record", extra={"message_id": record.message_id})
                return reject(record, "failed_after_retries", _described(error))
            raise

    return process_partial_response(  # type: ignore[return-value]
        event=event,
        record_handler=record_handler,
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )


def _described(error: Exception) -> str:
    """The exception's type and AWS error code, never its message (messages may quote identity keys)."""
    code = aws.error_code(error)
    return f"{type(error).__name__}{f' ({code})' if code else ''}"
