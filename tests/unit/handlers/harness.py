"""Run a Lambda handler in process: its module imported from its file with an environment built from its
settings, its adapters swapped for fakes you can assert on, its events wrapped as Lambda delivers them."""

from __future__ import annotations

import importlib.util
import itertools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from nextbest.core.decision import Decision, Message
from nextbest.core.settings import StageSettings

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT, REGION = "123456789012", "us-east-1"
_loaded = itertools.count()


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"


def load(step: str, settings: type[StageSettings], monkeypatch: pytest.MonkeyPatch, **values: Any) -> ModuleType:
    """``functions/<step>/handler.py`` imported under a name of its own, with the environment CDK would give it."""
    for name, value in settings.environment(table_name="nextbest", **values).items():
        monkeypatch.setenv(name, value)
    handler = ROOT / "functions" / step / "handler.py"
    spec = importlib.util.spec_from_file_location(f"{step}_handler_{next(_loaded)}", handler)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    """What powertools reads of a ``LambdaContext``."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        return arn("lambda", f"function:{self.function_name}")

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def sqs_record(body: str, queue: str, receives: int = 1, message_id: str | None = None) -> dict[str, Any]:
    """One record of an SQS event source mapping's event."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"handle-{uuid.uuid4()}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "1793610000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": arn("sqs", queue),
        "awsRegion": REGION,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def url_request(method: str, query: dict[str, str]) -> dict[str, Any]:
    """A request to a Lambda function URL (payload format 2.0) at its root path."""
    raw = urlencode(query)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": raw,
        "queryStringParameters": query or None,
        "body": "List-Unsubscribe=One-Click" if method == "POST" else "",
        "isBase64Encoded": False,
        "headers": {"content-type": "application/x-www-form-urlencoded", "host": "unsubscribe.example"},
        "requestContext": {
            "http": {"method": method, "path": "/", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
            "requestId": str(uuid.uuid4()),
            "stage": "$default",
            "domainName": "unsubscribe.example",
        },
    }


def failures(response: dict[str, Any]) -> list[str]:
    """The message ids a partial batch response hands back to SQS for another try."""
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


class Outbox:
    """A queue that keeps what it is given: bodies, attributes and delays."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], dict[str, str], int]] = []
        self.batches: list[int] = []
        """How many bodies each ``send_all`` carried."""

    def send(self, body: str, attributes: dict[str, str] | None = None, delay_seconds: int = 0) -> None:
        self.sent.append((json.loads(body), attributes or {}, delay_seconds))

    def send_all(self, bodies: list[str]) -> None:
        self.batches.append(len(bodies))
        for body in bodies:
            self.send(body)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [body for body, _, _ in self.sent]


class DeadLetters:
    """A dead-letter queue that keeps each rejected body with its reason."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, str]] = []
        """(body, reason, source queue) of each rejection."""

    def reject(self, body: str, reason: str, detail: str, source: str) -> None:
        self.rejected.append((body, reason, source))

    @property
    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.rejected]


class Alarms:
    """A scheduler that keeps the alarms it was asked to arm."""

    def __init__(self) -> None:
        self.armed: list[Any] = []

    def arm(self, due: Any, at: Any = None) -> None:
        self.armed.append(due)


class Sender:
    """A provider that accepts messages (message ids ``msg-1``, ``msg-2``…) once it has raised ``errors``, one
    per call, in turn."""

    def __init__(self, *errors: Exception) -> None:
        self.sent: list[tuple[str, str]] = []
        """(address, decision id) of each accepted message."""
        self.errors = list(errors)

    def send(self, to: str, message: Message, decision: Decision) -> str:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((to, decision.decision_id))
        return f"msg-{len(self.sent)}"


class Redelivery:
    """Keeps the postponements batch processing asks SQS for."""

    def __init__(self) -> None:
        self.postponed: list[tuple[str, int]] = []
        """(queue name, seconds) of each postponed message."""

    def postpone(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.postponed.append((queue_arn.rsplit(":", 1)[-1], seconds))
