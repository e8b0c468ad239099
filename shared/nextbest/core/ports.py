"""What the steps need from the outside world, as small interfaces; ``nextbest.aws`` implements them on
AWS and ``nextbest.memory`` in memory.
"""

from __future__ import annotations

from typing import Protocol

from nextbest.core.decision import Decision
from nextbest.core.messages import Message


class Conflict(Exception):
    """Someone else changed the item first; reload and try again."""

    def __init__(self, key: str, failed: int | None = None, refusal: str | None = None) -> None:
        super().__init__(key)
        self.failed = failed
        """Index of the write whose condition failed, when known."""
        self.refusal = refusal
        """Why a shared counter refused (its limit is reached), when that was the cause."""


class DecisionExists(Exception):
    """A decision with this id was already recorded (a retried trigger)."""


class Duplicate(Exception):
    """This event id was already applied: nothing to do."""


class Retry(Exception):
    """The provider throttled us; nothing was sent. The queue redelivers the request later."""


class Unreachable(Exception):
    """This address can never receive (a push endpoint the platform disabled); nothing was sent to it."""


class EmailSender(Protocol):
    def send(self, to: str, message: Message, decision: Decision) -> str: ...


class SmsSender(Protocol):
    def send(self, phone: str, message: Message, decision: Decision) -> str: ...

    def opted_out(self, phone: str) -> bool:
        """Whether the number replied STOP (the carrier-level opt-out list SNS keeps)."""
        ...


class PushSender(Protocol):
    def send(self, token: str, message: Message, decision: Decision) -> str:
        """Publish to the token's platform endpoint; raises :class:`Unreachable` if the endpoint is disabled."""
        ...
