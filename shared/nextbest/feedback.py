"""Feedback: what SES tells us after a send, in the SES event-publishing format.

============================  ==========================================================================
event                         effect
============================  ==========================================================================
Send                          nothing (deliver already recorded the send)
Delivery                      decision ``delivered``; the address's soft-bounce count is reset
Bounce, Permanent             address undeliverable; decision ``bounced``; SMS fallback if consented
Bounce, Transient/Undeterm.   retried once more after 15 min; the 3rd in a row counts as permanent
Complaint                     e-mail consent withdrawn at once (source ``complaint``)
Reject                        decision ``rejected`` (content refused, address fine); SMS fallback
Rendering Failure             decision ``failed``
Open, Click                   ``opened_at``/``clicked_at`` on the decision; the profile's last engagement
DeliveryDelay                 ``delayed_at`` on the decision; SES keeps trying
anything else                 dead-letter queue with reason ``unknown_notification_type``
============================  ==========================================================================

A fallback is a new decision (deterministic id) on SMS, checked for consent again when it is sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextbest.decisioning import Decision, delivery_request
from nextbest.events import RejectedEvent
from nextbest.profiles import Consent, Profile, offer_consent
from nextbest.queues import Queue
from nextbest.store import Store, iso

KNOWN_TYPES = {
    "Send",
    "Delivery",
    "Bounce",
    "Complaint",
    "Reject",
    "Rendering Failure",
    "Open",
    "Click",
    "DeliveryDelay",
    "Subscription",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Mail(_Model):
    message_id: str = Field(alias="messageId")
    timestamp: datetime
    destination: list[str]
    tags: dict[str, list[str]] = Field(default_factory=dict)


class Recipient(_Model):
    email_address: str = Field(alias="emailAddress")


class Bounce(_Model):
    bounce_type: Literal["Undetermined", "Permanent", "Transient"] = Field(alias="bounceType")
    bounce_sub_type: str = Field(alias="bounceSubType")
    bounced_recipients: list[Recipient] = Field(alias="bouncedRecipients")
    timestamp: datetime


class Complaint(_Model):
    complained_recipients: list[Recipient] = Field(alias="complainedRecipients")
    timestamp: datetime


class InboundSms(_Model):
    """A reply to one of our texts, as AWS End User Messaging SMS publishes it to SNS (two-way SMS)."""

    origination_number: str = Field(alias="originationNumber")
    message_body: str = Field(alias="messageBody")
    inbound_message_id: str = Field(alias="inboundMessageId")


STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "ARRET"}
START_WORDS = {"START", "UNSTOP", "YES"}


class Engagement(_Model):
    timestamp: datetime
    link: str | None = None


class SesEvent(_Model):
    event_type: str = Field(alias="eventType")
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None
    open: Engagement | None = None
    click: Engagement | None = None

    @property
    def decision_id(self) -> str | None:
        values = self.mail.tags.get("decision_id")
        return values[0] if values else None


def parse(body: str) -> SesEvent | InboundSms:
    if '"originationNumber"' in body:
        try:
            return InboundSms.model_validate_json(body)
        except ValidationError as error:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
            raise RejectedEvent("bad_notification", fields[:500]) from None
    try:
        event = SesEvent.model_validate_json(body)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise RejectedEvent("bad_notification", fields[:500]) from None
    if event.event_type not in KNOWN_TYPES:
        raise RejectedEvent("unknown_notification_type", f"eventType {event.event_type!r}")
    if event.event_type == "Bounce" and event.bounce is None:
        raise RejectedEvent("bad_notification", "Bounce without a bounce object")
    if event.event_type == "Complaint" and event.complaint is None:
        raise RejectedEvent("bad_notification", "Complaint without a complaint object")
    return event


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


def handle(store: Store, deliver: Queue, event: SesEvent) -> Handled:
    """Apply one SES event. Every type SES publishes has a rule; see the module docstring."""
    did = event.decision_id
    record = store.decision(did) if did else None
    if record is None:
        return Handled("none")
    decision = Decision.model_validate_json(record[1])
    kind, when = event.event_type, iso(event.mail.timestamp)
    if kind == "Send":
        return Handled("none")
    if kind == "Delivery":
        store.move_decision(decision.decision_id, "sent", "delivered")
        store.change(decision.profile_key, _delivered)
        return Handled("delivered")
    if kind == "Bounce" and event.bounce:
        addresses = {r.email_address.lower() for r in event.bounce.bounced_recipients}
        permanent = event.bounce.bounce_type == "Permanent"
        profile = store.change(decision.profile_key, lambda p: _bounced(p, addresses, permanent))
        if not permanent and profile is not None and profile.email_status == "ok":
            if store.move_decision(decision.decision_id, ("sent", "delivered"), "queued"):
                deliver.send(delivery_request(decision.decision_id), delay_seconds=RETRY_DELAY_SECONDS)
            return Handled("retry_later")
        store.move_decision(decision.decision_id, ("sent", "delivered"), "bounced")
        if profile is not None and _sms_fallback(store, deliver, decision, profile):
            return Handled("sms_fallback")
        return Handled("marked_bounced")
    if kind == "Complaint" and event.complaint:
        store.change(decision.profile_key, lambda p: _suppress(p, event.complaint.timestamp))  # type: ignore[union-attr]
        return Handled("suppressed")
    if kind == "Reject":  # SES refused the content (e.g. a virus scan): the address is fine, the e-mail is not
        store.move_decision(decision.decision_id, "sent", "rejected")
        profile = store.profile(decision.profile_key)
        if profile is not None and _sms_fallback(store, deliver, decision, profile):
            return Handled("sms_fallback")
        return Handled("rejected")
    if kind == "Rendering Failure":
        store.move_decision(decision.decision_id, "sent", "failed", reason="rendering failure")
        return Handled("failed")
    engagement = event.open or event.click
    if kind in ("Open", "Click") and engagement:
        store.annotate_decision(decision.decision_id, **{f"{kind.lower()}ed_at": iso(engagement.timestamp)})
        store.change(decision.profile_key, lambda p: _engaged(p, engagement.timestamp))
        return Handled("engaged")
    if kind == "DeliveryDelay":
        store.annotate_decision(decision.decision_id, delayed_at=when)
        return Handled("delayed")
    return Handled("none")


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


def _sms_fallback(store: Store, deliver: Queue, decision: Decision, profile: Profile) -> bool:
    """Re-route a bounced e-mail decision to SMS: a new decision, queued once, checked again at send."""
    if decision.channel != "email" or "sms" not in decision.messages:
        return False
    if not (profile.has_consent("sms") and profile.reachable("sms")):
        return False
    fallback = decision.model_copy(
        update={
            "decision_id": str(uuid.uuid5(uuid.UUID(decision.decision_id), "sms-fallback")),
            "channel": "sms",
            "fallback_of": decision.decision_id,
        }
    )
    created = store.put_decision(
        fallback.decision_id, "queued", fallback.model_dump_json(), fallback.profile_key, fallback.decided_at
    )
    existing = None if created else store.decision(fallback.decision_id)
    if created or (existing and existing[0] == "queued"):
        deliver.send(delivery_request(fallback.decision_id))
    return True
