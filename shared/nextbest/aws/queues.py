"""SQS as the functions use it: hand work to the next stage, or set a message aside with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nextbest.aws import clients as aws


class Queue:
    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sqs")

    def send(self, body: str, attributes: dict[str, str] | None = None, delay_seconds: int = 0) -> None:
        kwargs: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": body}
        if delay_seconds:
            kwargs["DelaySeconds"] = min(delay_seconds, 900)
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v
            }
        self.client.send_message(**kwargs)

    def send_all(self, bodies: Sequence[str]) -> None:
        """Send many, ten a request (``SendMessageBatch``'s most); if any is refused, raise once the rest are sent:
        the caller's retry sends them all again (what it sends is idempotent)."""
        failed: list[str] = []
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            failed.extend(f["Code"] for f in response.get("Failed", []))
        if failed:
            raise RuntimeError(f"SendMessageBatch refused {len(failed)} messages: {sorted(set(failed))}")


class DeadLetters(Queue):
    """The dead-letter queue of a stage, written to directly for input that can never succeed.

    Retrying a malformed event five times before SQS redrives it would only delay the verdict; sending it
    here at once, with a machine-readable ``reason``, keeps the batch moving and loses nothing.
    """

    def reject(self, body: str, reason: str, detail: str, source: str) -> None:
        self.send(body, {"reason": reason, "detail": detail, "source": source})


class DeadLettersBySource:
    """The dead-letter queues of a function fed by several queues (deliver: one per channel), by source queue
    name: a rejected record goes to its own queue's, where a replay finds the way back."""

    def __init__(self, urls: dict[str, str], client: Any = None) -> None:
        self.queues = {source: DeadLetters(url, client) for source, url in urls.items()}

    def reject(self, body: str, reason: str, detail: str, source: str) -> None:
        self.queues[source].reject(body, reason, detail, source)
