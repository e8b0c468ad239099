"""What one step asks of the next: each queue's payload is a pydantic model, parsed at the handler's edge.

========================  ===========================  ============================================================
queue                     payload                      sent by
========================  ===========================  ============================================================
due-triggers (decide)     :data:`DecideCommand`        EventBridge Scheduler (a :class:`Poll` per shard every minute, a
                                                       trigger or :class:`Release` deferred by quiet hours), decide
                                                       itself (a :class:`DueProfile` per profile a poll found),
                                                       deliver and feedback (a :class:`Release`: a fallback on
                                                       another channel, a soft bounce's retry, a send that quiet
                                                       hours overtook)
delivery-requests, one   :class:`DeliveryRequest`     decide, and only decide: every message passes the
per channel (deliver)                                 guardrails (consent, quiet hours, caps) on its way out;
                                                      deliver itself puts a throttled request back, delayed
========================  ===========================  ============================================================

The events queues carry the shop's events (``nextbest.core.events``) and the notifications queue what AWS
reports after a send (``nextbest.feedback.notifications``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

MAX_LATENESS = timedelta(days=1)
"""A trigger that rings later than this (history loaded in bulk, a long outage) is not acted on."""


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DueTrigger(_Command):
    """Decide for this trigger of this profile now: a decision quiet hours deferred (a one-time schedule whose
    input is this model)."""

    profile_key: str
    trigger: str
    due_at: AwareDatetime


class Poll(_Command):
    """Read one shard of the due index (every shard when ``shard`` is absent) for the profiles due in this poll's
    window (``nextbest.core.due``); sent every minute by a ``rate`` schedule per shard, ``poll_at`` being its
    scheduled time."""

    poll_at: AwareDatetime
    shard: int | None = Field(default=None, ge=0)


class DueProfile(_Command):
    """A poll found this profile due: decide every trigger of it that is due now."""

    profile_key: str


class Release(_Command):
    """A decision made earlier is ``waiting`` to go out (a fallback to another channel, a soft bounce's retry,
    a send that quiet hours overtook): check consent, quiet hours and caps for it now, and queue it for deliver
    or defer it. Only decide queues messages, so no path to the customer skips the guardrails."""

    decision_id: str


DecideCommand = DueTrigger | DueProfile | Poll | Release
"""What the due-triggers queue carries. They forbid extra fields and no two have the same required ones, so
exactly one of them validates a well-formed body (schedules armed before a release need no new tag)."""
decide_command: TypeAdapter[DueTrigger | DueProfile | Poll | Release] = TypeAdapter(DecideCommand)


def release(decision_id: str) -> str:
    return Release(decision_id=decision_id).model_dump_json()


class DeliveryRequest(_Command):
    """Send this decision (if it is still ``queued``): all deliver needs is in the decision record."""

    decision_id: str
    send_before: AwareDatetime | None = Field(
        default=None,
        description="When quiet hours begin for this customer and channel: a request deliver reaches later "
        "(retries, a backlog) goes back to decide as a Release instead of being sent.",
    )
    throttled: int = Field(
        default=0,
        ge=0,
        description="How many times the provider throttled this request before: each time deliver queues it again, "
        "delayed longer (``nextbest.aws.batch.backoff_seconds``), as a new message whose receives start from zero.",
    )


def delivery_request(decision_id: str, send_before: datetime | None = None) -> str:
    return DeliveryRequest(decision_id=decision_id, send_before=send_before).model_dump_json(exclude_defaults=True)
