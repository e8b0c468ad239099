"""Feedback: what SES tells us after a send, in the SES event-publishing format.

============================  ==========================================================================
event                         effect
============================  ==========================================================================
Send                          nothing (deliver already recorded the send)
Delivery                      decision ``delivered``; the address's soft-bounce count is reset
Bounce, Permanent             address undeliverable; decision ``bounced``; SMS fallback if consented
Bounce, Transient/Undeterm.   retried after 15 min (through decide's guardrails); the 3rd in a row counts as
                              permanent
Complaint                     e-mail consent withdrawn at once (source ``complaint``)
Reject                        decision ``rejected`` (content refused, address fine); SMS fallback
Rendering Failure             decision ``failed``
Open, Click                   first ``opened_at``/``clicked_at`` on the decision; the profile's last engagement
DeliveryDelay                 ``delayed_at`` on the decision; SES keeps trying
SMS TEXT_DELIVERED/SUCCESSFUL decision ``delivered`` (End User Messaging SMS configuration-set event)
SMS TEXT_QUEUED/PENDING       nothing (not final)
SMS TEXT_INVALID/BLOCKED      the number is undeliverable; decision ``failed``; fallback
SMS other final failures      decision ``failed`` (this message: carrier down, spam filter, TTL…); fallback
Push DeliveryFailure          decision ``failed``; an invalid/disabled token is marked dead; fallback
anything else                 dead-letter queue with reason ``unknown_notification_type``
============================  ==========================================================================

A fallback is a new decision (deterministic id) on the campaign's next channel the customer consented to
and can receive (:func:`nextbest.core.routing.fallback`). A fallback and a retry are handed to decide (a
``Release`` on its queue), which checks consent, quiet hours and caps before queueing them for deliver: feedback
never queues a send itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nextbest.core.clock import iso
from nextbest.core.commands import release
from nextbest.core.counters import Stage
from nextbest.core.decision import Decision
from nextbest.core.events import RejectedEvent
from nextbest.core.ports import Outbox, Store
from nextbest.core.profiles import Consent, Profile, address_hash, mark_undeliverable, offer_consent
from nextbest.core.routing import fallback
from nextbest.feedback.notifications import (
    DEAD_TOKEN_FAILURES,
    START_WORDS,
    STOP_WORDS,
    TEXT_BAD_NUMBER,
    TEXT_DELIVERED,
    TEXT_FAILED,
    TEXT_PENDING,
    InboundSms,
    PushFailure,
    SesEvent,
    TextEvent,
)

SOFT_BOUNCE_LIMIT = 3
"""Consecutive transient bounces after which an address is treated as undeliverable."""
RETRY_DELAY_SECONDS = 900
"""When a transient bounce is retried: the longest delay SQS offers, since SES already retried for hours."""


@dataclass(frozen=True)
class Handled:
    effect: Literal[
        "none",
        "delivered",
        "marked_bounced",
        "sms_fallback",
        "retry_later",
        "suppressed",
        "rejected",
        "failed",
        "engaged",
        "delayed",
        "resubscribed",
        "email_fallback",
        "push_fallback",
    ]


def handle_reply(store: Store, reply: InboundSms, at: datetime) -> Handled:
    """STOP (and its synonyms) withdraws SMS consent at once; START gives it back."""
    word = reply.message_body.strip().upper()
    if word not in STOP_WORDS | START_WORDS:
        return Handled("none")
    consent = Consent(granted=word in START_WORDS, at=at, source="sms_reply")
    found = store.change(f"p:{reply.origination_number}", lambda p: offer_consent(p, "sms", consent))
    if found is None:
        return Handled("none")
    return Handled("resubscribed" if consent.granted else "suppressed")


def handle(store: Store, decide: Outbox, event: SesEvent) -> Handled:
    """Apply one SES event. Every type SES publishes has a rule; see the module docstring. The decision is read only
    for a type whose rule changes something: SES publishes a ``Send`` for every e-mail, which changes nothing."""
    did = event.decision_id
    rule = _SES_RULES.get(event.event_type)
    record = store.decision(did) if did and rule is not None else None
    if record is None or rule is None:
        return Handled("none")
    return rule(store, decide, event, record.decision)


def _on_delivery(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    store.move_decision(decision.decision_id, "sent", "delivered")
    store.change(decision.profile_key, _delivered)
    return Handled("delivered")


def _on_bounce(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    if event.bounce is None:
        return Handled("none")
    # We send each e-mail to one address, so a bounce of it concerns that address even when the reporting MTA
    # lists another recipient (an out-of-office or forwarding reply): count it, or it would be re-sent forever.
    addresses = {r.email_address.lower() for r in event.bounce.bounced_recipients}
    addresses |= {d.lower() for d in event.mail.destination}
    permanent = event.bounce.bounce_type == "Permanent"
    profile = store.change(decision.profile_key, lambda p: _bounced(p, addresses, permanent))
    if not permanent and profile is not None and profile.email_status == "ok":
        moved = store.move_decision(decision.decision_id, ("sent", "delivered"), "waiting")
        if moved or _status(store, decision.decision_id) == "waiting":  # or a crash came before the Release
            decide.send(release(decision.decision_id), delay_seconds=RETRY_DELAY_SECONDS)
        return Handled("retry_later")
    store.move_decision(decision.decision_id, ("sent", "delivered"), "bounced")
    rerouted = fallback(store, decide, decision, profile) if profile is not None else None
    return Handled(f"{rerouted}_fallback" if rerouted else "marked_bounced")  # type: ignore[arg-type]


def _status(store: Store, decision_id: str) -> str | None:
    stored = store.decision(decision_id)
    return stored.status if stored else None


def _on_complaint(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    if event.complaint is None:
        return Handled("none")
    at = event.complaint.timestamp
    store.annotate_decision(decision.decision_id, complained_at=iso(event.mail.timestamp))
    store.change(decision.profile_key, lambda p: _suppress(p, at))
    return Handled("suppressed")


def _on_reject(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    """SES refused the content (e.g. a virus scan): the address is fine, the e-mail is not."""
    store.move_decision(decision.decision_id, "sent", "rejected")
    profile = store.profile(decision.profile_key)
    rerouted = fallback(store, decide, decision, profile) if profile is not None else None
    return Handled(f"{rerouted}_fallback" if rerouted else "rejected")  # type: ignore[arg-type]


def _on_rendering_failure(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    store.move_decision(decision.decision_id, "sent", "failed", reason="rendering failure")
    return Handled("failed")


def _on_engagement(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    engagement = event.open or event.click
    if engagement is None:
        return Handled("none")
    stage: Stage = "opened" if event.event_type == "Open" else "clicked"
    if store.annotate_decision(decision.decision_id, **{f"{stage}_at": iso(engagement.timestamp)}):
        store.change(decision.profile_key, lambda p: _engaged(p, engagement.timestamp))
    return Handled("engaged")


def _on_delay(store: Store, decide: Outbox, event: SesEvent, decision: Decision) -> Handled:
    store.annotate_decision(decision.decision_id, delayed_at=iso(event.mail.timestamp))
    return Handled("delayed")


_SES_RULES: dict[str, Callable[[Store, Outbox, SesEvent, Decision], Handled]] = {
    "Delivery": _on_delivery,
    "Bounce": _on_bounce,
    "Complaint": _on_complaint,
    "Reject": _on_reject,
    "Rendering Failure": _on_rendering_failure,
    "Open": _on_engagement,
    "Click": _on_engagement,
    "DeliveryDelay": _on_delay,
}
"""The rule for each SES event type that changes something (``Send`` and ``Subscription`` change nothing)."""


def _delivered(profile: Profile) -> Profile:
    profile.soft_bounces = 0
    return profile


def _bounced(profile: Profile, addresses: set[str], permanent: bool) -> Profile:
    if profile.email not in addresses:
        return profile
    profile.soft_bounces = 0 if permanent else profile.soft_bounces + 1
    if permanent or profile.soft_bounces >= SOFT_BOUNCE_LIMIT:
        profile.email_status = "bounced"
    return profile


def _engaged(profile: Profile, at: datetime) -> Profile:
    profile.last_engaged_at = max(filter(None, [profile.last_engaged_at, at]))
    return profile


def _suppress(profile: Profile, at: datetime) -> Profile:
    profile.email_status = "complained"
    return offer_consent(profile, "email", Consent(granted=False, at=at, source="complaint"))


def handle_text(store: Store, decide: Outbox, event: TextEvent) -> Handled:
    """Apply one End User Messaging SMS event to the decision named in its ``context``."""
    did = event.context.get("decision_id")
    if not did or not event.is_final or event.event_type in TEXT_PENDING:
        return Handled("none")  # without reading the decision: nothing to change
    record = store.decision(did)
    if record is None:
        return Handled("none")
    decision = record.decision
    if event.event_type in TEXT_DELIVERED:
        store.move_decision(decision.decision_id, "sent", "delivered")
        return Handled("delivered")
    if event.event_type not in TEXT_BAD_NUMBER | TEXT_FAILED:
        raise RejectedEvent("unknown_notification_type", f"eventType {event.event_type!r}")
    store.move_decision(decision.decision_id, ("sent", "delivered"), "failed", reason=event.event_type)
    if event.event_type in TEXT_BAD_NUMBER:
        number = f"p:{event.destination_phone_number}"
        profile = store.change(decision.profile_key, lambda p: mark_undeliverable(p, [number]))
    else:
        profile = store.profile(decision.profile_key)
    rerouted = fallback(store, decide, decision, profile) if profile is not None else None
    return Handled(f"{rerouted}_fallback" if rerouted else "failed")  # type: ignore[arg-type]


def handle_push_failure(store: Store, decide: Outbox, failure: PushFailure) -> Handled:
    """A push SNS accepted could not be delivered: mark a dead token, and reach the customer another way."""
    remembered = store.message(failure.message_id)
    record = store.decision(remembered.decision_id) if remembered else None
    if remembered is None or record is None:
        return Handled("none")
    decision = record.decision
    store.move_decision(decision.decision_id, ("sent", "delivered"), "failed", reason=failure.failure_type)

    def forget_token(profile: Profile) -> Profile:
        dead = [f"t:{t}" for t in profile.device_tokens if address_hash(f"t:{t}") == remembered.address_hash]
        return mark_undeliverable(profile, dead)

    if failure.failure_type in DEAD_TOKEN_FAILURES:
        profile = store.change(decision.profile_key, forget_token)
    else:
        profile = store.profile(decision.profile_key)
    rerouted = fallback(store, decide, decision, profile) if profile is not None else None
    return Handled(f"{rerouted}_fallback" if rerouted else "failed")  # type: ignore[arg-type]
