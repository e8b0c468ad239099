"""The due index: when a profile with pending triggers is next looked at, instead of one alarm per customer.

Every profile write carries the profile's *index time* (its earliest pending trigger, rounded up to the minute,
never before the write) and a shard (a hash of its key) as two attributes, which the sparse ``by_due`` index
holds (keys only). A poll every minute (:class:`nextbest.core.commands.Poll`, fired by an EventBridge Scheduler
``rate`` schedule per shard) reads, in its shard, the profiles whose index time falls in its window and hands each to
decide, which re-reads the profile and decides what is due. A trigger that moves later, is decided or vanishes
just changes or drops the attributes in the write that changes it: no alarm to move, orphan or delete.

Windows do not overlap (``(poll_at - LAG - POLL_EVERY, poll_at - LAG]``), so a profile whose index time stays put is
handed to decide once, not once a minute while decide is behind. ``LAG`` lets the index catch up (a GSI is updated
asynchronously, usually within a second) and covers clocks that disagree a little; since no write puts an index
time before its own time, an event that arrives late is polled one ``LAG`` after it is written, never missed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from nextbest.core.commands import MAX_LATENESS
from nextbest.core.events import CHANNELS
from nextbest.core.profiles import LAPSE, Profile

DUE_SHARDS = 16
"""Partitions of the ``by_due`` index, each queried once a minute. A partition takes 1,000 write units a second; a
profile whose earliest trigger moves costs its index 2 (a keys-only delete and put), so 16 shards carry about
8,000 moved triggers a second before DynamoDB has to split them."""
POLL_EVERY = timedelta(minutes=1)
LAG = timedelta(minutes=1)
FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Index times are strings that sort as times do (UTC, whole seconds)."""


def due_shard(profile_key: str) -> int:
    return int(hashlib.sha256(profile_key.encode()).hexdigest()[:8], 16) % DUE_SHARDS


def index_time(profile: Profile, written_at: datetime) -> datetime | None:
    """When a profile written at ``written_at`` is next due, or None (nothing pending: not in the index).

    The earliest pending trigger, rounded up to the minute (the poll's resolution: a cart updated again within the
    minute does not move the index), and never before the write itself. A trigger already more than
    ``MAX_LATENESS`` late when written (history loaded in bulk) is not indexed: decide would refuse it. A lapse
    check is never too late: it is about the customer as they are now.

    A profile no channel may reach (a cookie that never identified, a customer without any consent, an address
    that bounced) is not indexed either: decide could only log that it sent nothing, and each move of its triggers
    would cost the index two writes. Its triggers stay on the profile; the write that makes it reachable (an
    identification, a merge, a consent) indexes whichever are still due within ``MAX_LATENESS``.
    """
    if not any(profile.has_consent(c) and profile.reachable(c) for c in CHANNELS):
        return None
    pending = [due for t, due in profile.triggers.items() if t == LAPSE or written_at - due <= MAX_LATENESS]
    if not pending:
        return None
    return max(_minute_after(min(pending)), _minute_after(written_at))


def poll_window(poll_at: datetime) -> tuple[datetime, datetime]:
    """The index times one poll reads, ``(after, until]``: consecutive polls read consecutive windows."""
    until = poll_at - LAG
    return until - POLL_EVERY, until


def to_index(at: datetime) -> str:
    return at.astimezone(UTC).strftime(FORMAT)


def _minute_after(at: datetime) -> datetime:
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)
