"""boto3 clients, created lazily and shared per process (Lambda reuses them across invocations)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
_ONCE = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
"""For calls that send a message (SES SendEmail, SNS Publish, SendTextMessage): those APIs have no idempotency
key, so botocore must never repeat one after a timeout or a 5xx that came after the provider took it. A
throttled send is retried through the queue (``nextbest.aws.batch``), an ambiguous one never."""


@cache
def client(service: str, once: bool = False) -> Any:
    """The shared client of a service; ``once``: one whose calls botocore never retries (see ``_ONCE``)."""
    return boto3.client(service, config=_ONCE if once else _CONFIG)  # type: ignore[call-overload]


def reset() -> None:
    """Forget clients (tests and the emulation call this when they swap the backend)."""
    client.cache_clear()


def error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


THROTTLING = {
    "Throttling",
    "Throttled",  # SNS
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
"""Errors after which the request certainly had no effect, so retrying through the queue is safe. A server
error (5xx: ``InternalFailure``, ``ServiceUnavailable``…) is not one of them: it may come after the provider
acted."""
