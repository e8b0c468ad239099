"""What AWS tells feedback after a send, as typed models: SES event publishing (every event type), End User
Messaging SMS configuration-set events and two-way SMS replies, and SNS mobile push delivery failures.

The four arrive on one queue in four unrelated JSON shapes, none of which names its source. :data:`Notification`
is a discriminated union whose discriminator reads the *parsed* body's keys (each shape has one required key
the others lack), so a routing decision is never made on a substring of the raw text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from nextbest.core.events import RejectedEvent

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


class TextEvent(_Model):
    """An SMS event of an End User Messaging SMS configuration set, as its SNS event destination publishes it."""

    event_type: str = Field(alias="eventType")
    event_timestamp: datetime = Field(alias="eventTimestamp")
    is_final: bool = Field(alias="isFinal")
    destination_phone_number: str = Field(alias="destinationPhoneNumber")
    message_id: str = Field(alias="messageId")
    message_status: str = Field(alias="messageStatus")
    context: dict[str, str] = Field(default_factory=dict)


TEXT_DELIVERED = {"TEXT_DELIVERED", "TEXT_SUCCESSFUL"}


TEXT_PENDING = {"TEXT_QUEUED", "TEXT_PENDING"}


TEXT_BAD_NUMBER = {"TEXT_INVALID", "TEXT_BLOCKED"}
"""The number itself cannot take our texts (invalid, or the recipient's device/carrier blocks them)."""


TEXT_FAILED = {
    "TEXT_UNREACHABLE",
    "TEXT_CARRIER_UNREACHABLE",
    "TEXT_TTL_EXPIRED",
    "TEXT_INVALID_MESSAGE",
    "TEXT_CARRIER_BLOCKED",
    "TEXT_SPAM",
    "TEXT_PROTECT_BLOCKED",
    "TEXT_UNKNOWN",
}
"""This message failed for good, but the number may work another day (a phone switched off, a carrier
outage, content a filter refused): the customer gets the message another way, the number is kept."""


class PushFailure(_Model):
    """A platform application's ``EventDeliveryFailure`` notification (SNS mobile push)."""

    event_type: str = Field(alias="EventType")
    endpoint_arn: str = Field(alias="EndpointArn")
    failure_type: str = Field(alias="FailureType")
    message_id: str = Field(alias="MessageId")
    time: datetime = Field(alias="Time")


DEAD_TOKEN_FAILURES = {"InvalidPlatformToken", "EndpointDisabled"}
"""Failures that say the device token is gone (app uninstalled, token rotated), not that we misconfigured."""


def _shape(value: Any) -> str | None:
    """Which of the four shapes a parsed body has; None (a validation error) when it is not an object."""
    if not isinstance(value, dict):
        return None
    for key, shape in (("messageStatus", "text"), ("EndpointArn", "push"), ("originationNumber", "reply")):
        if key in value:
            return shape
    return "ses"


Notification = Annotated[
    Annotated[SesEvent, Tag("ses")]
    | Annotated[TextEvent, Tag("text")]
    | Annotated[PushFailure, Tag("push")]
    | Annotated[InboundSms, Tag("reply")],
    Discriminator(_shape),
]
_notification: TypeAdapter[SesEvent | TextEvent | PushFailure | InboundSms] = TypeAdapter(Notification)


def parse(body: str) -> SesEvent | TextEvent | PushFailure | InboundSms:
    """The typed notification, or :class:`RejectedEvent` naming what is wrong with it."""
    try:
        notification = _notification.validate_json(body)
    except ValidationError as error:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors()[:5])
        raise RejectedEvent("bad_notification", fields[:500]) from None
    if isinstance(notification, TextEvent) and not notification.event_type.startswith("TEXT_"):
        raise RejectedEvent("unknown_notification_type", f"eventType {notification.event_type!r}")
    if isinstance(notification, PushFailure) and notification.event_type != "DeliveryFailure":
        raise RejectedEvent("unknown_notification_type", f"EventType {notification.event_type!r}")
    if isinstance(notification, SesEvent):
        _check_ses(notification)
    return notification


def _check_ses(event: SesEvent) -> None:
    if event.event_type not in KNOWN_TYPES:
        raise RejectedEvent("unknown_notification_type", f"eventType {event.event_type!r}")
    if event.event_type == "Bounce" and event.bounce is None:
        raise RejectedEvent("bad_notification", "Bounce without a bounce object")
    if event.event_type == "Complaint" and event.complaint is None:
        raise RejectedEvent("bad_notification", "Complaint without a complaint object")
