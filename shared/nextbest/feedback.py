"""Feedback: what SES tells us after a send, in the SES event-publishing format.

A permanent bounce makes the address undeliverable and, when the customer has a consented phone, re-routes
the same decision to SMS as a new fallback decision. A complaint withdraws e-mail consent at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextbest.decisioning import Decision, delivery_request
from nextbest.events import RejectedEvent
from nextbest.profiles import Consent, Profile
from nextbest.queues import Queue
from nextbest.store import Conflict, Store

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


class SesEvent(_Model):
    event_type: str = Field(alias="eventType")
    mail: Mail
    bounce: Bounce | None = None
    complaint: Complaint | None = None

    @property
    def decision_id(self) -> str | None:
        values = self.mail.tags.get("decision_id")
        return values[0] if values else None


def parse(body: str) -> SesEvent:
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


@dataclass(frozen=True)
class Handled:
    effect: Literal["none", "marked_bounced", "sms_fallback", "suppressed", "delivered"]


def handle(store: Store, deliver: Queue, event: SesEvent) -> Handled:
    did = event.decision_id
    record = store.decision(did) if did else None
    if record is None:
        return Handled("none")
    decision = Decision.model_validate_json(record[1])
    if event.event_type == "Delivery":
        store.move_decision(decision.decision_id, "sent", "delivered")
        return Handled("delivered")
    if event.event_type == "Bounce" and event.bounce and event.bounce.bounce_type == "Permanent":
        addresses = {r.email_address.lower() for r in event.bounce.bounced_recipients}
        profile = _update(store, decision.profile_key, lambda p: _mark_bounced(p, addresses))
        store.move_decision(decision.decision_id, ("sent", "delivered"), "bounced")
        if profile is not None and _sms_fallback(store, deliver, decision, profile):
            return Handled("sms_fallback")
        return Handled("marked_bounced")
    if event.event_type == "Complaint" and event.complaint:
        _update(store, decision.profile_key, lambda p: _suppress(p, event.complaint.timestamp))  # type: ignore[union-attr]
        return Handled("suppressed")
    return Handled("none")


def _mark_bounced(profile: Profile, addresses: set[str]) -> Profile:
    if profile.email in addresses:
        profile.email_status = "bounced"
    return profile


def _suppress(profile: Profile, at: datetime) -> Profile:
    profile.email_status = "complained"
    profile.consent["email"] = Consent(granted=False, at=at, source="complaint")
    return profile


def _update(store: Store, key: str, change) -> Profile | None:  # type: ignore[no-untyped-def]
    for _ in range(8):
        profile = store.profile(key)
        if profile is None:
            return None
        updated = change(profile.model_copy(deep=True))
        if updated == profile:
            return profile
        try:
            return store.update_profile(updated)
        except Conflict:
            continue
    raise Conflict(f"could not update {key}")


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
    store.put_decision(
        fallback.decision_id, "queued", fallback.model_dump_json(), fallback.profile_key, fallback.decided_at
    )
    status = store.decision(fallback.decision_id)
    if status and status[0] == "queued":
        deliver.send(delivery_request(fallback.decision_id))
    return True
