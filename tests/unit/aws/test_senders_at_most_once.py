"""A message API has no idempotency key: a send that timed out or got a server error after the provider took
it must never be sent again, by botocore's retries or by ours. Faults are injected into the real boto3 client
(botocore's event hooks) in front of moto, so the real retry configuration is what is tested."""

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from nextbest.aws import clients
from nextbest.aws.senders import SesEmail, SnsSms
from nextbest.core.decision import Decision, Message
from nextbest.core.ports import OutcomeUnknown, Refused, Throttled

DECISION = Decision(
    decision_id="00000000-0000-4000-8000-000000000001",
    profile_key="c:cus_1",
    trigger="cart_abandoned",
    trigger_due_at=datetime(2026, 11, 2, 10, tzinfo=UTC),
    decided_at=datetime(2026, 11, 2, 10, tzinfo=UTC),
    action="send",
    campaign_id="cart-abandonment",
    channel="email",
    messages={},
)
EMAIL = Message(channel="email", subject="Your cart", text="cart https://s/c/x")
SMS = Message(channel="sms", text="Your cart https://s/c/x")


class Failing:
    """A client whose send fails with this error (a fake, not a mock)."""

    def __init__(self, code: str, status: int, message: str = "") -> None:
        error = {"Code": code, "Message": message}
        self.error = ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, "Send")

    def send_email(self, **kwargs):
        raise self.error


def sent_emails():
    from moto.ses.models import ses_backends

    return ses_backends["123456789012"]["us-east-1"].sent_messages


def sent_texts():
    from moto.sns.models import sns_backends

    return sns_backends["123456789012"]["us-east-1"].sms_messages


def test_an_email_whose_response_timed_out_was_sent_once_and_is_reported_unknown(response_lost):
    clients.client("sesv2").create_email_identity(EmailIdentity="shop@example.org")
    fault = response_lost("sesv2", "SendEmail", times=4)

    with pytest.raises(OutcomeUnknown):
        SesEmail("shop@example.org", "", "https://u", lambda: b"key").send("ann@example.org", EMAIL, DECISION)

    assert fault.attempts == 1 and len(sent_emails()) == 1


def test_a_text_whose_response_timed_out_was_sent_once_and_is_reported_unknown(response_lost):
    fault = response_lost("sns", "Publish", times=4)

    with pytest.raises(OutcomeUnknown):
        SnsSms().send("+14155550100", SMS, DECISION)

    assert fault.attempts == 1 and len(sent_texts()) == 1


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("Throttling", 400, Throttled),  # refused: nothing was sent, deliver queues it again for later
        ("TooManyRequestsException", 429, Throttled),
        ("InternalFailure", 500, OutcomeUnknown),  # the provider may have sent it: never again
        ("ServiceUnavailable", 503, OutcomeUnknown),
        ("MessageRejected", 400, Refused),
    ],
)
def test_what_a_provider_error_means_for_the_message(code, status, outcome):
    sender = SesEmail("shop@example.org", "", "https://u", lambda: b"key", client=Failing(code, status))

    with pytest.raises(outcome):
        sender.send("ann@example.org", EMAIL, DECISION)


@pytest.mark.parametrize(
    ("message", "daily"),
    [("Maximum sending rate exceeded.", False), ("Daily message quota exceeded.", True), ("Rate exceeded", False)],
)
def test_ses_throttling_says_whether_the_daily_quota_is_spent(message, daily):
    sender = SesEmail(
        "shop@example.org", "", "https://u", lambda: b"key", client=Failing("ThrottlingException", 400, message)
    )

    with pytest.raises(Throttled) as throttled:
        sender.send("ann@example.org", EMAIL, DECISION)

    assert throttled.value.daily is daily
