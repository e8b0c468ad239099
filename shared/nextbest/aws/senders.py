"""The providers deliver sends through: SES e-mail, SNS or End User Messaging SMS, SNS mobile push."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Any, TypeVar

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from nextbest.aws import clients as aws
from nextbest.core import clock
from nextbest.core.decision import Decision, Message
from nextbest.core.ports import OptedOut, OutcomeUnknown, Refused, Throttled, Unreachable
from nextbest.core.tokens import sign

F = TypeVar("F", bound=Callable[..., str])


def provider_call(send: F) -> F:
    """The provider's errors in the domain's terms: throttled (:class:`Throttled`: nothing was sent, try later),
    refused (:class:`Refused` with its code) or unknown (:class:`OutcomeUnknown`: a timeout, a dropped
    connection or a server error, after which the message may or may not have gone). The send itself goes
    through a client botocore never retries (``aws.client(..., once=True)``): a repeat could send it twice."""

    @functools.wraps(send)
    def translated(*args: Any, **kwargs: Any) -> str:
        try:
            return send(*args, **kwargs)
        except ClientError as error:
            code = aws.error_code(error)
            if code in aws.THROTTLING:  # SES says which quota: "Maximum sending rate" or "Daily message quota"
                message = str(error.response.get("Error", {}).get("Message", ""))
                raise Throttled(code, daily="daily" in message.lower()) from error
            if error.response.get("Reason") == "DESTINATION_PHONE_NUMBER_OPTED_OUT":  # End User Messaging SMS
                raise OptedOut(code) from error
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400) >= 500:
                raise OutcomeUnknown(code or "server error") from error  # it may have gone: never sent again
            raise Refused(code or "rejected") from error
        except (ConnectionError, ReadTimeoutError) as error:
            raise OutcomeUnknown(type(error).__name__) from error

    return translated  # type: ignore[return-value]


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
        """The one-click link, signed as the e-mail is sent: its issue time starts the link's lifetime."""
        token = sign(self.signing_key(), decision.decision_id, clock.now())
        return f"{self.unsubscribe_url.rstrip('/')}/?t={token}"

    @provider_call
    def send(self, to: str, message: Message, decision: Decision) -> str:
        try:
            raw = mime(self.sender, to, message, decision, self.configuration_set, self.unsubscribe_link(decision))
        except ValueError as error:  # an address or header Python's e-mail package refuses: nothing was sent
            raise Refused("invalid_message") from error
        client = self._client or aws.client("sesv2", once=True)
        response = client.send_email(
            FromEmailAddress=self.sender,
            Destination={"ToAddresses": [to]},
            Content={"Raw": {"Data": raw}},
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

    @provider_call
    def send(self, phone: str, message: Message, decision: Decision) -> str:
        client = self._client or aws.client("sns")
        if client.check_if_phone_number_is_opted_out(phoneNumber=phone)["isOptedOut"]:
            raise OptedOut("isOptedOut")
        response = (self._client or aws.client("sns", once=True)).publish(
            PhoneNumber=phone,
            Message=message.text,
            MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"}},
        )
        return str(response["MessageId"])


class EndUserMessagingSms:
    """SMS through AWS End User Messaging SMS (``pinpoint-sms-voice-v2``), which SNS SMS runs on.

    Chosen over SNS ``Publish`` when delivery status matters: its configuration set publishes every
    ``TEXT_*`` event to an SNS topic that feedback reads, and ``Context`` carries the decision id into
    those events. SNS SMS reports delivery status only to CloudWatch Logs.

    The opt-out list is not read before a send (``DescribeOptedOutNumbers``' default quota is one request a
    second): ``SendTextMessage`` itself refuses a number on it (``ConflictException``, reason
    ``DESTINATION_PHONE_NUMBER_OPTED_OUT``), which becomes :class:`OptedOut`.
    """

    def __init__(self, configuration_set: str, opt_out_list: str = "Default", client: Any = None) -> None:
        self.configuration_set = configuration_set
        self.opt_out_list = opt_out_list
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("pinpoint-sms-voice-v2")

    @provider_call
    def send(self, phone: str, message: Message, decision: Decision) -> str:
        client = self._client or aws.client("pinpoint-sms-voice-v2", once=True)
        response = client.send_text_message(
            DestinationPhoneNumber=phone,
            MessageBody=message.text,
            MessageType="PROMOTIONAL",
            ConfigurationSetName=self.configuration_set,
            Context={"decision_id": decision.decision_id, "campaign": decision.campaign_id or "none"},
        )
        return str(response["MessageId"])


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

    @provider_call
    def send(self, token: str, message: Message, decision: Decision) -> str:
        arn = self.endpoint(token)
        try:
            response = (self._client or aws.client("sns", once=True)).publish(
                TargetArn=arn, MessageStructure="json", Message=push_payload(message, decision)
            )
        except ClientError as error:
            if aws.error_code(error) == "EndpointDisabled":
                raise Unreachable("endpoint disabled") from error
            raise
        return str(response["MessageId"])
