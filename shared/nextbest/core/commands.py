"""What one step asks of the next: each queue's payload is a pydantic model, parsed at the handler's edge.

========================  ===========================  ============================================================
queue                     payload                      sent by
========================  ===========================  ============================================================
due-triggers (decide)     :data:`DecideCommand`        EventBridge Scheduler (a :class:`DueTrigger` when a trigger's
                                                       alarm rings, a :class:`Sweep` once a day), and decide itself
                                                       (the sweep's next pages)
delivery-requests         :class:`DeliveryRequest`     decide (a message to send), deliver and feedback (a
(deliver)                                              fallback on another channel, a soft bounce's retry)
========================  ===========================  ============================================================

The events queues carry the shop's events (``nextbest.core.events``) and the notifications queue what AWS
reports after a send (``nextbest.feedback.notifications``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

SWEEP_SHARDS = 4
"""The daily sweep reads the buyers' profiles in this many independent chains of pages (the sparse
``by_sweep`` index has one partition per shard)."""


def sweep_shard(profile_key: str) -> int:
    """The shard of the sweep a buyer's profile belongs to (stable, evenly spread)."""
    return int(hashlib.sha256(profile_key.encode()).hexdigest()[:8], 16) % SWEEP_SHARDS


MAX_LATENESS = timedelta(days=1)
"""A trigger that rings later than this (history loaded in bulk, a long outage) is not acted on."""


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DueTrigger(_Command):
    """A trigger's alarm rang: decide for this profile now. Armed by ingest (and decide, for deferrals and
    follow-ups) as a one-time schedule whose input is this model."""

    profile_key: str
    trigger: str
    due_at: AwareDatetime


class Sweep(_Command):
    """One page of the daily sweep (or, without a segment, the request to start one)."""

    sweep_at: datetime
    segment: int | None = Field(default=None, description="The shard of buyers this page belongs to.")
    start: dict[str, Any] | None = None


DecideCommand = DueTrigger | Sweep
"""What the due-triggers queue carries. The two have no field in common and forbid extra ones, so exactly
one of them validates a well-formed body (schedules armed before a release need no new tag)."""
decide_command: TypeAdapter[DueTrigger | Sweep] = TypeAdapter(DecideCommand)


class DeliveryRequest(_Command):
    """Send this decision (if it is still ``queued``): all deliver needs is in the decision record."""

    decision_id: str


def delivery_request(decision_id: str) -> str:
    return DeliveryRequest(decision_id=decision_id).model_dump_json()
