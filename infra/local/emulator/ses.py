"""SES event publishing: every message moto recorded as sent turned into the events SES would publish to its
configuration set's SNS destinations, following the mailbox simulator's addresses, and the opens and clicks
SES would track when told a recipient engaged (``publish_engagement``)."""

from __future__ import annotations

import email
import email.utils
import json
import uuid
from datetime import datetime
from typing import Any, Literal

from nextbest.core.clock import ManualClock

from infra.local.emulator.account import ACCOUNT, REGION
from infra.local.emulator.event_sources import Requests, uncounted
from infra.local.emulator.provisioning import Deployment

Destinations = list[tuple[set[str], str]]
"""(event types, lower case; SNS topic ARN) of each SNS destination of a configuration set."""


class SesSimulator:
    def __init__(self, deployment: Deployment, clock: ManualClock) -> None:
        self.deployment = deployment
        self.clock = clock
        self.event_counts: dict[str, int] = {}
        self._seen = 0
        self.requests: Requests = uncounted
        """Told of each request SES's event publishing stands for (the emulation's metering counts them)."""
        self._sent_by_decision: dict[str, tuple[Any, datetime]] = {}
        """Decision id -> the e-mail moto recorded for it and when, for the opens and clicks that follow."""

    def sent_emails(self) -> list[Any]:
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)

    def publish_events(self) -> int:
        """The events of every e-mail sent since the last call; how many were published."""
        sent = self.sent_emails()
        published = sum(self._publish_for(message) for message in sent[self._seen :])
        self._seen = len(sent)
        return published

    def publish_engagement(self, decision_id: str, kind: Literal["Open", "Click"], at: datetime, link: str = "") -> int:
        """What SES publishes when the recipient of the e-mail sent for ``decision_id`` opens it or clicks a link
        in it, at ``at`` (SES tracks both with a pixel and redirected links; the mailbox simulator never does)."""
        sent = self._sent_by_decision.get(decision_id)
        if sent is None:
            return 0
        message, sent_at = sent
        mail = email.message_from_string(message.raw_data)
        destinations, tags = self._destinations(mail)
        published = 0
        for recipient in recipients(message):
            event = engagement(kind, recipient, message.id, message.source, tags, mail, sent_at, at, link)
            published += self._publish(event, destinations)
        return published

    def _publish_for(self, message: Any) -> int:
        raw = getattr(message, "raw_data", None)
        if raw is None:
            return 0
        mail = email.message_from_string(raw)
        destinations, tags = self._destinations(mail)
        if not destinations:
            return 0
        for decision_id in tags.get("decision_id", []):
            self._sent_by_decision[decision_id] = (message, self.clock.now())
        published = 0
        for recipient in recipients(message):
            for event in simulate_mailbox(recipient, message.id, message.source, tags, mail, self.clock.now()):
                published += self._publish(event, destinations)
        return published

    def _destinations(self, mail: email.message.Message) -> tuple[Destinations, dict[str, list[str]]]:
        """The SNS destinations of the e-mail's configuration set, and the tags SES puts on its events."""
        config = mail.get("X-SES-CONFIGURATION-SET")
        tags: dict[str, list[str]] = {"ses:configuration-set": [config or ""]}
        for pair in (mail.get("X-SES-MESSAGE-TAGS") or "").split(","):
            if "=" in pair:
                name, value = pair.split("=", 1)
                tags[name.strip()] = [value.strip()]
        return self.deployment.ses_destinations.get(config or "", []), tags

    def _publish(self, event: dict[str, Any], destinations: Destinations) -> int:
        """Count the event as SES's own metrics would, and publish it to each destination that wants it (in moto's
        SNS backend directly, counted as the request it stands for)."""
        from moto.sns.models import sns_backends

        kind = event["eventType"]
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        published = 0
        for wanted, topic in destinations:
            if _event_key(kind) in wanted:
                sns_backends[ACCOUNT][REGION].publish(json.dumps(event), arn=topic)  # SES's own work: no request
                self.requests("sns", "Publish", topic.rsplit(":", 1)[-1], 1)
                published += 1
        return published


def recipients(message: Any) -> list[str]:
    """The addresses a message recorded by moto went to, once each.

    moto appends the raw message's To/Cc headers to the explicit destinations (SES uses the destinations
    alone), so the same address can appear twice.
    """
    return list(dict.fromkeys(addr.lower() for _, addr in email.utils.getaddresses(message.destinations) if addr))


def _event_key(event_type: str) -> str:
    return {"Rendering Failure": "renderingfailure", "DeliveryDelay": "deliverydelay"}.get(
        event_type, event_type.lower()
    )


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _mail_object(
    recipient: str,
    message_id: str,
    source: str,
    tags: dict[str, list[str]],
    mail: email.message.Message,
    sent: datetime,
) -> dict[str, Any]:
    """The ``mail`` object every SES event of one message carries (when it was sent, to whom, its tags)."""
    return {
        "timestamp": _stamp(sent),
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source}",
        "sendingAccountId": ACCOUNT,
        "messageId": message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": k, "value": v} for k, v in mail.items() if not k.upper().startswith("X-SES-")],
        "commonHeaders": {
            "from": [source],
            "to": [recipient],
            "messageId": message_id,
            "subject": mail.get("Subject", ""),
        },
        "tags": tags,
    }


def engagement(
    kind: Literal["Open", "Click"],
    recipient: str,
    message_id: str,
    source: str,
    tags: dict[str, list[str]],
    mail: email.message.Message,
    sent: datetime,
    at: datetime,
    link: str = "",
) -> dict[str, Any]:
    """An SES ``Open`` or ``Click`` event, in SES event-publishing format."""
    detail: dict[str, Any] = {"ipAddress": "192.0.2.1", "timestamp": _stamp(at), "userAgent": "Mozilla/5.0"}
    if kind == "Click":
        detail |= {"link": link, "linkTags": {}}
    return {
        "eventType": kind,
        "mail": _mail_object(recipient, message_id, source, tags, mail, sent),
        kind.lower(): detail,
    }


def simulate_mailbox(
    recipient: str, message_id: str, source: str, tags: dict[str, list[str]], mail: email.message.Message, now: datetime
) -> list[dict[str, Any]]:
    """The SES events the mailbox simulator produces for ``recipient``, in SES event-publishing format.

    ``success@``, ``bounce@``, ``complaint@``, ``suppressionlist@`` and ``ooto@simulator.amazonses.com``
    (with optional ``+label``) behave as documented; any other address is treated as a plain delivery.
    """
    local, _, domain = recipient.lower().partition("@")
    scenario = local.split("+", 1)[0] if domain == "simulator.amazonses.com" else "success"
    common = _mail_object(recipient, message_id, source, tags, mail, now)
    send = {"eventType": "Send", "mail": common, "send": {}}
    if scenario in ("bounce", "suppressionlist"):
        return [send, _bounce(common, recipient, now, on_suppression_list=scenario == "suppressionlist")]
    if scenario == "complaint":
        return [send, _delivery(common, recipient, now), _complaint(common, recipient, now)]
    return [send, _delivery(common, recipient, now)]


def _delivery(common: dict[str, Any], recipient: str, now: datetime) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": common,
        "delivery": {
            "timestamp": _stamp(now),
            "processingTimeMillis": 420,
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
    }


def _bounce(common: dict[str, Any], recipient: str, now: datetime, *, on_suppression_list: bool) -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "mail": common,
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "OnAccountSuppressionList" if on_suppression_list else "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": _stamp(now),
            "feedbackId": f"{uuid.uuid4()}-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
    }


def _complaint(common: dict[str, Any], recipient: str, now: datetime) -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "mail": common,
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": _stamp(now),
            "feedbackId": f"{uuid.uuid4()}-000000",
            "userAgent": "Amazon SES Mailbox Simulator",
            "complaintFeedbackType": "abuse",
            "arrivalDate": _stamp(now),
        },
    }
