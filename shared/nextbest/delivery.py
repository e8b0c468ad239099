"""Deliver: send a decided message at most once, and never to a channel the customer has left.

Consent and reachability are checked again at send time, against a consistent read of the profile, so an
opt-out or a bounce that arrived after the decision still stops it. The decision's status is the
idempotency key: only the invocation that moves it from ``queued`` to ``sending`` may send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from nextbest import aws, clock
from nextbest.decisioning import Decision
from nextbest.messages import Message
from nextbest.profiles import Consent, Profile, offer_consent
from nextbest.store import Store, iso
from nextbest.unsubscribe import sign

Outcome = Literal["sent", "suppressed", "already_handled", "failed", "unknown"]


class Retry(Exception):
    """The provider throttled us; nothing was sent. The queue redelivers the request later."""


class EmailSender(Protocol):
    def send(self, to: str, message: Message, decision: Decision) -> str: ...


class SmsSender(Protocol):
    def send(self, phone: str, message: Message, decision: Decision) -> str: ...

    def opted_out(self, phone: str) -> bool:
        """Whether the number replied STOP (the carrier-level opt-out list SNS keeps)."""
        ...


@dataclass(frozen=True)
class Delivered:
    outcome: Outcome
    reason: str = ""
    channel: str | None = None


def refusal(profile: Profile | None, channel: str) -> str | None:
    """Why this channel must not be used for this customer right now, or None."""
    if profile is None:
        return "profile no longer exists"
    if not profile.has_consent(channel):  # type: ignore[arg-type]
        return f"no {channel} consent"
    if not profile.reachable(channel):  # type: ignore[arg-type]
        return f"{channel} not reachable"
    return None


def deliver(store: Store, decision_id: str, email: EmailSender, sms: SmsSender) -> Delivered:
    record = store.decision(decision_id)
    if record is None:
        return Delivered("failed", "decision not found")
    status, doc = record
    if status != "queued":
        return Delivered("already_handled", status)
    decision = Decision.model_validate_json(doc)
    channel = decision.channel
    assert channel is not None and decision.action == "send"
    profile = store.profile(decision.profile_key)
    why_not = refusal(profile, channel)
    if why_not:
        store.move_decision(decision_id, "queued", "suppressed", reason=why_not)
        return Delivered("suppressed", why_not, channel)
    assert profile is not None
    if channel == "sms" and profile.phone and sms.opted_out(profile.phone):
        stop = Consent(granted=False, at=clock.now(), source="sms_stop")
        store.change(profile.key, lambda p: offer_consent(p, "sms", stop))
        store.move_decision(decision_id, "queued", "suppressed", reason="sms opted out (STOP)")
        return Delivered("suppressed", "sms opted out (STOP)", channel)
    if not store.move_decision(decision_id, "queued", "sending"):
        return Delivered("already_handled", "claimed by another delivery")
    message = decision.messages[channel]
    try:
        if channel == "email":
            assert profile.email
            provider_id = email.send(profile.email, message, decision)
        else:
            assert profile.phone
            provider_id = sms.send(profile.phone, message, decision)
    except ClientError as error:
        code = aws.error_code(error)
        if code in aws.THROTTLING:
            store.move_decision(decision_id, "sending", "queued")
            raise Retry(code) from error
        store.move_decision(decision_id, "sending", "failed", reason=code or "rejected")
        return Delivered("failed", code, channel)
    except (ConnectionError, ReadTimeoutError) as error:
        # The provider may or may not have accepted it. Sending again could duplicate: we never do.
        store.move_decision(decision_id, "sending", "unknown", reason=type(error).__name__)
        return Delivered("unknown", type(error).__name__, channel)
    store.move_decision(decision_id, "sending", "sent", message_id=provider_id, sent_at=iso(clock.now()))
    return Delivered("sent", "", channel)


def mime(sender: str, to: str, message: Message, decision: Decision, configuration_set: str, unsubscribe: str) -> bytes:
    """A multipart e-mail whose SES headers carry the configuration set and the decision for feedback,
    with RFC 8058 one-click unsubscribe."""
    # RFC 5322 allows 998 characters a line; at the default 78, Python would encode the long
    # List-Unsubscribe URL as RFC 2047 words, which mailbox providers do not decode.
    mail = EmailMessage(policy=SMTP.clone(max_line_length=998))
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = message.subject or ""
    mail["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    mail["X-SES-CONFIGURATION-SET"] = configuration_set
    mail["X-SES-MESSAGE-TAGS"] = f"decision_id={decision.decision_id}, campaign={decision.campaign_id}"
    mail["List-Unsubscribe"] = f"<{unsubscribe}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail.as_bytes()


class SesEmail:
    def __init__(
        self,
        sender: str,
        configuration_set: str,
        unsubscribe_url: str,
        signing_key: Callable[[], bytes],
        client: Any = None,
    ) -> None:
        self.sender = sender
        self.configuration_set = configuration_set
        self.unsubscribe_url = unsubscribe_url
        self.signing_key = signing_key
        self._client = client

    def unsubscribe_link(self, decision: Decision) -> str:
        return f"{self.unsubscribe_url.rstrip('/')}/?t={sign(self.signing_key(), decision.decision_id)}"

    def send(self, to: str, message: Message, decision: Decision) -> str:
        client = self._client or aws.client("sesv2")
        response = client.send_email(
            FromEmailAddress=self.sender,
            Destination={"ToAddresses": [to]},
            Content={
                "Raw": {
                    "Data": mime(
                        self.sender, to, message, decision, self.configuration_set, self.unsubscribe_link(decision)
                    )
                }
            },
            ConfigurationSetName=self.configuration_set,
            EmailTags=[
                {"Name": "decision_id", "Value": decision.decision_id},
                {"Name": "campaign", "Value": decision.campaign_id or "none"},
            ],
        )
        return str(response["MessageId"])


class SnsSms:
    """SMS through SNS. SNS keeps the list of numbers that replied STOP; we consult it before each send."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def send(self, phone: str, message: Message, decision: Decision) -> str:
        client = self._client or aws.client("sns")
        response = client.publish(
            PhoneNumber=phone,
            Message=message.text,
            MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"}},
        )
        return str(response["MessageId"])

    def opted_out(self, phone: str) -> bool:
        client = self._client or aws.client("sns")
        return bool(client.check_if_phone_number_is_opted_out(phoneNumber=phone)["isOptedOut"])
