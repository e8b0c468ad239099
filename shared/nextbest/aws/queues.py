"""SQS as the functions use it: hand work to the next stage, or set a message aside with its reason."""

from __future__ import annotations

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
