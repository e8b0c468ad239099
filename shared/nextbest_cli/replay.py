"""``nextbest replay``: move dead-lettered messages back to the queue they came from, after a fix.

Works against any account the shell's credentials reach (and against the local emulation in tests).
The source of each message is its ``source`` attribute when nextbest rejected it, else the queue whose
redrive policy names this dead-letter queue. The ``reason`` attributes are dropped on the way back, so a
message that fails again is judged afresh.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REJECTION_ATTRIBUTES = {"reason", "detail", "source"}


@dataclass
class Replayed:
    moved: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_destination: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.by_reason.most_common()) or "none"
        targets = ", ".join(f"{q.rsplit('/', 1)[-1]}: {n}" for q, n in self.by_destination.items()) or "none"
        return f"moved {self.moved} message(s); reasons: {reasons}; to: {targets}"


def replay(sqs: Any, dead_letter_url: str, limit: int | None = None, reason: str | None = None) -> Replayed:
    """Move up to ``limit`` messages (only those rejected for ``reason``, if given) back to their source."""
    report = Replayed()
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dead_letter_url).get("queueUrls", [])
    by_name = {url.rsplit("/", 1)[-1]: url for url in sources}
    skipped: list[str] = []
    while limit is None or report.moved < limit:
        messages = sqs.receive_message(
            QueueUrl=dead_letter_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            why = attributes.get("reason", {}).get("StringValue", "redriven after repeated failures")
            source = attributes.get("source", {}).get("StringValue")
            destination = by_name.get(source or "") or (sources[0] if len(sources) == 1 else None)
            if (
                destination is None
                or (reason is not None and why != reason)
                or (limit is not None and report.moved >= limit)
            ):
                skipped.append(message["ReceiptHandle"])
                continue
            kept = {k: v for k, v in attributes.items() if k not in REJECTION_ATTRIBUTES}
            sqs.send_message(
                QueueUrl=destination,
                MessageBody=message["Body"],
                MessageAttributes={
                    k: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for k, v in kept.items()
                },
            )
            sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
            report.moved += 1
            report.by_reason[why] += 1
            report.by_destination[destination] += 1
    for handle in skipped:  # leave what we did not move visible again at once
        sqs.change_message_visibility(QueueUrl=dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0)
    return report
