"""What the steps need from the outside world, as small interfaces; ``nextbest.aws`` implements them on
AWS and ``nextbest.memory`` in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from nextbest.core.catalog import Product, Stored
from nextbest.core.commands import DueTrigger, Release
from nextbest.core.counters import Counter
from nextbest.core.decision import Decision, Message
from nextbest.core.interest import IndexEntry, InterestPage
from nextbest.core.profiles import Profile


class Conflict(Exception):
    """Someone else changed the item first; reload and try again.

    Its message names the item by a pseudonym, never by its key: identity keys hold e-mail addresses and phone
    numbers, and an exception's message ends up in the error log when a batch fails."""

    def __init__(
        self, key: str, failed: int | None = None, refusal: str | None = None, why: str = "conflicting write"
    ) -> None:
        super().__init__(f"{why} (item {pseudonym(key)})" if key else why)
        self.key = key
        self.failed = failed
        """Index of the write whose condition failed, when known."""
        self.refusal = refusal
        """Why a shared counter refused (its limit is reached), when that was the cause."""


def pseudonym(key: str) -> str:
    """A short, stable, non-reversible name for an identity key, for logs and error messages."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class DecisionExists(Exception):
    """A decision with this id was already recorded (a retried trigger)."""


class Duplicate(Exception):
    """This event id was already applied: nothing to do."""


class Retry(Exception):
    """A service throttled us (a provider, Scheduler); nothing happened. The queue redelivers the record later,
    after a backoff (``nextbest.aws.batch``)."""


class Throttled(Retry):
    """A provider refused a send for its rate or its daily quota; nothing was sent. deliver keeps the request:
    it queues it again, delayed, instead of letting SQS count receives toward the dead-letter queue.
    ``daily``: the 24-hour quota is spent, which no short wait cures."""

    def __init__(self, code: str, daily: bool = False) -> None:
        super().__init__(code)
        self.daily = daily


class Refused(Exception):
    """The provider refused the message (``code`` is its error code); nothing was sent."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class OutcomeUnknown(Exception):
    """The request may or may not have reached the provider (a timeout, a dropped connection)."""


class OptedOut(Exception):
    """The number replied STOP: it is on the provider's opt-out list, and nothing was sent."""


class Unreachable(Exception):
    """This address can never receive (a push endpoint the platform disabled); nothing was sent to it."""


class EmailSender(Protocol):
    def send(self, to: str, message: Message, decision: Decision) -> str: ...


class SmsSender(Protocol):
    def send(self, phone: str, message: Message, decision: Decision) -> str:
        """Send a text; raises :class:`OptedOut` if the number is on the provider's opt-out list (it replied STOP)."""
        ...


class PushSender(Protocol):
    def send(self, token: str, message: Message, decision: Decision) -> str:
        """Publish to the token's platform endpoint; raises :class:`Unreachable` if the endpoint is disabled."""
        ...


@dataclass(frozen=True)
class StoredDecision:
    status: str
    """``queued``, ``sending``, ``sent``, ``delivered``, ``held_out``, ``deferred``, ``suppressed``, ``waiting``
    (for decide to release it)… (the compare-and-set moves of decide, deliver and feedback)."""
    decision: Decision
    claimed_at: str | None = None
    """When deliver claimed it (``sending``), ISO 8601."""
    claim: str | None = None
    """Who claimed it: ``<request id>:<attempt>`` (the SQS message whose delivery claimed it)."""


@dataclass(frozen=True)
class SentMessage:
    """What a provider's message id leads back to (push failures name only the message)."""

    decision_id: str
    address_hash: str


class Profiles(Protocol):
    """Profiles and identity: every identifier of a person leads to one profile."""

    def forget(self, keys: Iterable[str] | None = None) -> None: ...
    def prefetch(self, keys: Iterable[str]) -> None: ...
    def prefetch_identities(self, keys: Iterable[str]) -> None:
        """Identity items and their tombstones, read ahead for a batch of events."""
        ...

    def resolve(self, keys: list[str]) -> dict[str, Profile | None]: ...
    def profile(self, key: str) -> Profile | None: ...
    def save(
        self,
        profile: Profile,
        previous: list[Profile],
        new_keys: list[str],
        event_ids: Sequence[str] = (),
        counters: Sequence[Counter] = (),
    ) -> Profile: ...
    def change(self, key: str, change: Callable[[Profile], Profile], attempts: int = 8) -> Profile | None: ...
    def update_profile(self, profile: Profile) -> Profile: ...
    def linked_to(self, keys: Iterable[str]) -> set[str]: ...
    def erase(self, keys: list[str], decision_ids: list[str], interests: Iterable[tuple[str, str]] = ()) -> None:
        """Delete the identity items of ``keys`` and the decisions, tombstone the keys, and delete the interest index
        entries named by (product id, profile key) in ``interests``."""
        ...

    def erased(self, keys: list[str]) -> dict[str, datetime]:
        """Which of these identity keys belong to an erased person, and when they were erased."""
        ...

    def lift_tombstones(self, keys: list[str]) -> None: ...


class Decisions(Protocol):
    """Decision records and the status moves that make each message go out at most once."""

    def put_decision(self, decision: Decision, status: str) -> bool: ...
    def commit_decision(self, decision: Decision, status: str, profile: Profile | None) -> None: ...
    def decision(self, decision_id: str) -> StoredDecision | None: ...
    def move_decision(
        self,
        decision_id: str,
        from_status: str | tuple[str, ...],
        to_status: str,
        profile: Profile | None = None,
        **fields: str,
    ) -> bool: ...
    def claim(self, decision_id: str, token: str) -> bool:
        """``queued`` → ``sending`` under the caller's unique ``token``: True if the caller holds the decision now
        (also when its own claim took effect but the answer was lost)."""
        ...

    def annotate_decision(self, decision_id: str, **fields: str) -> bool: ...
    def decisions_of(self, key: str) -> list[str]: ...
    def remember_message(self, message_id: str, decision_id: str, address_hash: str) -> None: ...
    def message(self, message_id: str) -> SentMessage | None: ...


class Counters(Protocol):
    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        """(sends, conversions) per variant of a campaign."""
        ...

    def lease(self, limit: Counter, want: Decimal) -> Decimal:
        """Add up to ``want`` to ``limit``'s item, never past ``limit.limit``: what was granted (0 when it is full).

        Deciders take their campaigns' caps and budgets in leased blocks (``nextbest.decide.leases``), so no
        decision writes a shared item."""
        ...


class Due(Protocol):
    def due(self, shard: int, after: datetime, until: datetime) -> list[str]:
        """Keys of the profiles of a due-index shard whose index time is in ``(after, until]``
        (``nextbest.core.due``)."""
        ...


class Catalog(Protocol):
    """The shop's products (``nextbest.core.catalog``)."""

    def put_product(self, product: Product) -> Stored:
        """Store the product unless a newer state (or this one) is stored, and say what it replaced."""
        ...

    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        """The known products among these ids, in one read (BatchGetItem)."""
        ...


class Interests(Protocol):
    """The interest index: who is interested in which product (``nextbest.core.interest``)."""

    def put_interests(self, entries: Sequence[IndexEntry], delete: Sequence[tuple[str, str]] = ()) -> None:
        """Write these entries (each replacing the entry of the same product and profile key, if any) and delete
        those of the (product id, profile key) pairs of ``delete`` (a missing one is no error)."""
        ...

    def interested(self, product_id: str, shard: int, after: str | None, limit: int, now: datetime) -> InterestPage:
        """One page of one shard of the product's index: the next ``limit`` entries after the profile key ``after``
        (in key order), less those expired by ``now`` (DynamoDB deletes expired items only within days), and where
        the next page starts (None when the shard is read to its end)."""
        ...


@dataclass(frozen=True)
class Tallied:
    """What one conditional write of the tally did."""

    added: bool
    created: bool = False
    """It created the shard's item for the campaign (its first count)."""
    checkpoint: int | None = None
    """When refused: the checkpoint the item holds (the refusal returns it, so the tally never reads first)."""


class Tallies(Protocol):
    """The tally's own counter items: one per campaign and stream shard, with the last change it counted."""

    def add_tally(
        self,
        shard: str,
        campaign_id: str,
        counters: Sequence[Counter],
        through: int,
        since: int | None = None,
        before: int | None = None,
    ) -> Tallied:
        """Add ``counters`` and move the item's checkpoint to ``through``, in one conditional write, on condition
        that the checkpoint is ``since`` or, when ``since`` is None, that the item has none or one below ``before``
        (none of the changes from ``before`` on were counted). Refused: nothing added, and the checkpoint found."""
        ...

    def fold_closed(self, campaign_id: str, created_before: datetime) -> int:
        """Fold the campaign's shard items created before ``created_before`` (their shards long closed) into its
        total, each exactly once; how many were folded."""
        ...


class Store(Profiles, Decisions, Counters, Due, Catalog, Interests, Protocol):
    """The whole table (``nextbest.aws.store.Store``; ``nextbest.memory.MemoryStore`` in tests and the lab)."""


class Outbox(Protocol):
    """A queue a step sends commands to (``nextbest.aws.queues.Queue``)."""

    def send(self, body: str, attributes: dict[str, str] | None = None, delay_seconds: int = 0) -> None: ...
    def send_all(self, bodies: Sequence[str]) -> None:
        """Send many (``SendMessageBatch``, ten a request)."""
        ...


class Alarms(Protocol):
    """One-time alarms for what quiet hours defer: a trigger's decision, a waiting decision's release
    (``nextbest.aws.scheduler.Scheduler``). Every other trigger is found by the due index's poll."""

    def arm(self, command: DueTrigger | Release, at: datetime | None = None) -> None: ...
