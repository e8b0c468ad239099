"""Deliver: send a decided message at most once, and never to a channel the customer has left.

Consent and reachability are checked again at send time, against a consistent read of the profile, so an
opt-out or a bounce that arrived after the decision still stops it. The decision's status is the
idempotency key: only the invocation that moves it from ``queued`` to ``sending`` may send.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from nextbest import aws, clock
from nextbest.attribution import funnel
from nextbest.decisioning import Decision, delivery_request
from nextbest.events import Channel
from nextbest.messages import Message
from nextbest.profiles import Consent, Profile, bound_identifiers, offer_consent
from nextbest.store import Store, iso
from nextbest.unsubscribe import sign

Outcome = Literal["sent", "suppressed", "already_handled", "failed", "unknown"]


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


class Requests(Protocol):
    """Where new delivery requests go (the deliver queue): fallbacks are new decisions, sent like any other."""

    def send(self, body: str, attributes: dict[str, str] | None = None, delay_seconds: int = 0) -> None: ...


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


def address_hash(key: str) -> str:
    """A stable, non-reversible name for an identity key (``t:<token>``), kept where personal data is not."""
    return hashlib.sha256(key.encode()).hexdigest()


def mark_undeliverable(profile: Profile, keys: Iterable[str]) -> Profile:
    """Record that a provider called these identity keys (``p:…``, ``t:…``) unable to receive."""
    profile.undeliverable = bound_identifiers({*profile.undeliverable, *keys})
    return profile


def deliver(
    store: Store,
    decision_id: str,
    email: EmailSender,
    sms: SmsSender,
    push: PushSender | None = None,
    requests: Requests | None = None,
) -> Delivered:
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
    why_not = refusal(profile, channel) or (
        "push is not configured (no platform application)" if channel == "push" and push is None else None
    )
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
    dead: list[str] = []
    token: str | None = None
    try:
        provider_id: str | None
        if channel == "email":
            assert profile.email
            provider_id = email.send(profile.email, message, decision)
        elif channel == "sms":
            assert profile.phone
            provider_id = sms.send(profile.phone, message, decision)
        else:
            assert push is not None
            provider_id, token = _push(push, profile.push_tokens, message, decision, dead)
    except ClientError as error:
        code = aws.error_code(error)
        _forget_tokens(store, profile.key, dead)
        if code in aws.THROTTLING:
            store.move_decision(decision_id, "sending", "queued")
            raise Retry(code) from error
        store.move_decision(decision_id, "sending", "failed", reason=code or "rejected")
        return Delivered("failed", code, channel)
    except (ConnectionError, ReadTimeoutError) as error:
        # The provider may or may not have accepted it. Sending again could duplicate: we never do.
        _forget_tokens(store, profile.key, dead)
        store.move_decision(decision_id, "sending", "unknown", reason=type(error).__name__)
        return Delivered("unknown", type(error).__name__, channel)
    updated = _forget_tokens(store, profile.key, dead)
    if provider_id is None:  # every device token turned out to be disabled: nothing was sent
        store.move_decision(decision_id, "sending", "failed", reason="push endpoints disabled")
        rerouted = fallback(store, requests, decision, updated or profile) if requests else None
        return Delivered("failed", f"push endpoints disabled; fallback {rerouted or 'none'}", channel)
    sent = [funnel(decision, "sent")]
    store.move_decision(decision_id, "sending", "sent", sent, message_id=provider_id, sent_at=iso(clock.now()))
    if token is not None:
        store.remember_message(provider_id, decision_id, address_hash(f"t:{token}"))
    return Delivered("sent", "", channel)


def _push(
    push: PushSender, tokens: list[str], message: Message, decision: Decision, dead: list[str]
) -> tuple[str | None, str | None]:
    """Try the customer's live device tokens in turn; a disabled one is noted in ``dead`` and skipped.
    Returns the provider's message id and the token it went to, or (None, None) if none could take it."""
    for token in tokens:
        try:
            return push.send(token, message, decision), token
        except Unreachable:
            dead.append(token)
    return None, None


def _forget_tokens(store: Store, key: str, dead: list[str]) -> Profile | None:
    if not dead:
        return None
    return store.change(key, lambda p: mark_undeliverable(p, [f"t:{t}" for t in dead]))


def fallback(store: Store, requests: Requests, decision: Decision, profile: Profile) -> Channel | None:
    """Re-route a decision whose channel failed: a new decision (deterministic id) on the next channel of the
    campaign, in its order of preference, that the customer consented to and can receive, queued once and
    checked again when it is sent. At most one fallback per channel and original decision, so it ends."""
    root_id = decision.fallback_of or decision.decision_id
    tried = {decision.channel}
    if decision.fallback_of:
        root = store.decision(decision.fallback_of)
        if root is not None:
            tried.add(Decision.model_validate_json(root[1]).channel)
    for channel in decision.messages:
        if channel in tried or not (profile.has_consent(channel) and profile.reachable(channel)):
            continue
        rerouted = decision.model_copy(
            update={
                "decision_id": str(uuid.uuid5(uuid.UUID(root_id), f"{channel}-fallback")),
                "channel": channel,
                "fallback_of": root_id,
            }
        )
        created = store.put_decision(
            rerouted.decision_id, "queued", rerouted.model_dump_json(), rerouted.profile_key, rerouted.decided_at
        )
        existing = None if created else store.decision(rerouted.decision_id)
        if created or (existing and existing[0] == "queued"):
            requests.send(delivery_request(rerouted.decision_id))
        return channel
    return None


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


class EndUserMessagingSms:
    """SMS through AWS End User Messaging SMS (``pinpoint-sms-voice-v2``), which SNS SMS runs on.

    Chosen over SNS ``Publish`` when delivery status matters: its configuration set publishes every
    ``TEXT_*`` event to an SNS topic that feedback reads, and ``Context`` carries the decision id into
    those events. SNS SMS reports delivery status only to CloudWatch Logs.
    """

    def __init__(self, configuration_set: str, opt_out_list: str = "Default", client: Any = None) -> None:
        self.configuration_set = configuration_set
        self.opt_out_list = opt_out_list
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("pinpoint-sms-voice-v2")

    def send(self, phone: str, message: Message, decision: Decision) -> str:
        response = self.client.send_text_message(
            DestinationPhoneNumber=phone,
            MessageBody=message.text,
            MessageType="PROMOTIONAL",
            ConfigurationSetName=self.configuration_set,
            Context={"decision_id": decision.decision_id, "campaign": decision.campaign_id or "none"},
        )
        return str(response["MessageId"])

    def opted_out(self, phone: str) -> bool:
        found = self.client.describe_opted_out_numbers(OptOutListName=self.opt_out_list, OptedOutNumbers=[phone])
        return bool(found.get("OptedOutNumbers"))


def push_payload(message: Message, decision: Decision) -> str:
    """One notification for every platform (``MessageStructure="json"``): FCM HTTP v1 under ``GCM``, APNs
    (production and sandbox) under ``APNS``/``APNS_SANDBOX``; the decision id rides in the data for
    attribution when the app reports the open."""
    data = {"decision_id": decision.decision_id, "campaign": decision.campaign_id or ""}
    fcm = {
        "fcmV1Message": {
            "message": {"notification": {"title": message.subject or "", "body": message.text}, "data": data}
        }
    }
    apns = {"aps": {"alert": {"title": message.subject or "", "body": message.text}}, **data}
    return json.dumps(
        {
            "default": message.text,
            "GCM": json.dumps(fcm),
            "APNS": json.dumps(apns),
            "APNS_SANDBOX": json.dumps(apns),
        }
    )


_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:\S+) already exists")


class SnsPush:
    """Push through an SNS platform application (FCM or APNs credentials, created by the operator).

    CreatePlatformEndpoint is idempotent for a token with the same attributes; when the endpoint exists with
    other attributes (typically disabled), SNS names it in the error and we use that one. The profile is the
    authority on whether a token is alive: an endpoint found disabled for a token the profile still trusts
    is re-enabled (AWS's documented re-registration step); if the platform then rejects it, SNS disables it
    again and its delivery-failure event, or the next EndpointDisabled, marks the token dead for good.
    """

    def __init__(self, platform_application_arn: str, client: Any = None) -> None:
        self.application = platform_application_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("sns")

    def endpoint(self, token: str) -> str:
        try:
            arn = str(
                self.client.create_platform_endpoint(PlatformApplicationArn=self.application, Token=token)[
                    "EndpointArn"
                ]
            )
        except ClientError as error:
            found = _EXISTING_ENDPOINT.search(str(error.response.get("Error", {}).get("Message", "")))
            if aws.error_code(error) != "InvalidParameter" or not found:
                raise
            arn = found.group(1)
        attributes = self.client.get_endpoint_attributes(EndpointArn=arn)["Attributes"]
        if str(attributes.get("Enabled", "true")).lower() != "true" or attributes.get("Token", token) != token:
            self.client.set_endpoint_attributes(EndpointArn=arn, Attributes={"Token": token, "Enabled": "true"})
        return arn

    def send(self, token: str, message: Message, decision: Decision) -> str:
        arn = self.endpoint(token)
        try:
            response = self.client.publish(
                TargetArn=arn, MessageStructure="json", Message=push_payload(message, decision)
            )
        except ClientError as error:
            if aws.error_code(error) == "EndpointDisabled":
                raise Unreachable("endpoint disabled") from error
            raise
        return str(response["MessageId"])
