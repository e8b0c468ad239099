"""Push through SNS platform endpoints, SMS delivery events, and throttling backoff, on moto."""

import json
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from nextbest.aws import clients as aws
from nextbest.aws.batch import process
from nextbest.aws.senders import EndUserMessagingSms, SnsPush, SnsSms
from nextbest.core.decision import Decision, Message
from nextbest.core.ports import OptedOut, Retry
from nextbest.deliver.service import deliver
from nextbest.feedback.notifications import parse
from nextbest.feedback.service import handle_push_failure, handle_text

from tests.builders import Collect, known_customer, release, ses_email, table_store
from tests.conftest import EVENTS, T0

APP = "nextbest-shop"
TOKEN = "fcm-token-0001"
PHONE = "+14155550100"


@pytest.fixture
def world(emulation):
    store = table_store(emulation)
    requests = Collect()  # decide's queue: fallbacks are handed to decide's guardrails
    email = ses_email(emulation)
    app = emulation.client("sns").create_platform_application(
        Name=APP, Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    return store, requests, email, SnsSms(), SnsPush(app)


def decided(store, channel, name="d-1", channels=("push", "email", "sms")):
    """A queued decision for cus_1 on ``channel``, rendered for every channel (the campaign's order)."""
    messages = {
        "push": Message(channel="push", subject="Your cart", text="Still thinking? https://s/c/x"),
        "email": Message(channel="email", subject="Your cart", html="<p>cart</p>", text="cart https://s/c/x"),
        "sms": Message(channel="sms", text="Your cart https://s/c/x"),
    }
    decision_id = f"00000000-0000-4000-8000-{int.from_bytes(name.encode()):012x}"[-36:]
    decision = Decision(
        decision_id=decision_id,
        profile_key="c:cus_1",
        trigger="cart_abandoned",
        trigger_due_at=T0,
        decided_at=T0,
        action="send",
        campaign_id="cart-abandonment",
        channel=channel,
        messages={c: messages[c] for c in channels},
    )
    assert store.put_decision(decision, "queued")
    return decision


def test_given_a_device_token_then_the_push_goes_once_with_a_payload_per_platform(world, emulation):
    store, requests, email, sms, push = world
    known_customer(store, {"push": True}, device_token=TOKEN)
    decision = decided(store, "push")
    first = deliver(store, decision.decision_id, email, sms, push, requests)
    again = deliver(store, decision.decision_id, email, sms, push, requests)
    assert (first.outcome, again.outcome) == ("sent", "already_handled")
    [(token, raw)] = emulation.sent_push()
    payload = json.loads(raw)
    fcm = json.loads(payload["GCM"])["fcmV1Message"]["message"]
    apns = json.loads(payload["APNS"])
    assert token == TOKEN and fcm["notification"]["title"] == "Your cart"
    assert fcm["data"]["decision_id"] == apns["decision_id"] == decision.decision_id
    assert apns["aps"]["alert"]["body"].startswith("Still thinking?")


def test_given_no_platform_application_then_push_is_suppressed_with_the_reason(world, emulation):
    store, requests, email, sms, _ = world
    known_customer(store, {"push": True}, device_token=TOKEN)
    decision = decided(store, "push")
    result = deliver(store, decision.decision_id, email, sms, None, requests)
    assert result.outcome == "suppressed" and "platform application" in result.reason


def test_given_an_endpoint_left_disabled_for_a_token_the_profile_trusts_then_it_is_re_enabled(world, emulation):
    store, requests, email, sms, push = world
    known_customer(store, {"push": True}, device_token=TOKEN)
    sns = emulation.client("sns")
    arn = sns.create_platform_endpoint(
        PlatformApplicationArn=push.application, Token=TOKEN, Attributes={"Enabled": "false"}
    )["EndpointArn"]
    decision = decided(store, "push")
    assert deliver(store, decision.decision_id, email, sms, push, requests).outcome == "sent"
    assert sns.get_endpoint_attributes(EndpointArn=arn)["Attributes"]["Enabled"] == "true"
    assert len(emulation.sent_push()) == 1


class DisabledOnPublish:
    """The real SNS client, except that the endpoint turns out disabled when we publish (EndpointDisabled)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def publish(self, **kwargs):
        raise ClientError({"Error": {"Code": "EndpointDisabled", "Message": "Endpoint is disabled"}}, "Publish")


def test_given_an_endpoint_disabled_at_publish_then_the_token_is_dead_and_email_takes_over(world, emulation):
    store, requests, email, sms, push = world
    known_customer(store, {"push": True, "email": True}, device_token=TOKEN, email="ann@example.org")
    disabled = SnsPush(push.application, client=DisabledOnPublish(emulation.client("sns")))
    decision = decided(store, "push")
    result = deliver(store, decision.decision_id, email, sms, disabled, requests)
    assert result.outcome == "failed" and "fallback email" in result.reason
    store.forget()
    profile = store.profile("c:cus_1")
    assert profile.push_tokens == [] and not profile.reachable("push")
    [fallback_id] = release(store, requests)
    assert deliver(store, fallback_id, email, sms, push, requests).outcome == "sent"
    assert len(emulation.sent_emails()) == 1 and emulation.sent_push() == []


def test_given_a_push_delivery_failure_event_then_the_token_is_dead_and_sms_takes_over(world, emulation):
    store, requests, email, sms, push = world
    known_customer(store, {"push": True, "sms": True}, device_token=TOKEN, phone=PHONE)
    decision = decided(store, "push", channels=("push", "sms"))
    assert deliver(store, decision.decision_id, email, sms, push, requests).outcome == "sent"
    message_id = store.client.get_item(
        TableName=store.table, Key={"pk": {"S": f"d:{decision.decision_id}"}, "sk": {"S": "DECISION"}}
    )["Item"]["message_id"]["S"]
    sample = (EVENTS / "push" / "delivery-failure.json").read_text().replace("MESSAGE_ID", message_id)
    effect = handle_push_failure(store, requests, parse(sample))
    assert effect.effect == "sms_fallback"
    assert store.decision(decision.decision_id).status == "failed"
    store.forget()
    assert store.profile("c:cus_1").push_tokens == []
    [fallback_id] = release(store, requests)
    assert deliver(store, fallback_id, email, sms, push, requests).outcome == "sent"
    [(_, phone, _)] = emulation.sent_sms()
    assert phone == PHONE


def _text(name, decision_id, phone=PHONE):
    return (EVENTS / "sms" / name).read_text().replace("DECISION_ID", decision_id).replace("PHONE", phone)


def test_given_an_invalid_number_event_then_the_phone_is_undeliverable_and_email_takes_over(world, emulation):
    store, requests, email, sms, push = world
    known_customer(store, {"sms": True, "email": True}, phone=PHONE, email="ann@example.org")
    decision = decided(store, "sms", channels=("sms", "email"))
    assert deliver(store, decision.decision_id, email, sms, push, requests).outcome == "sent"
    effect = handle_text(store, requests, parse(_text("text-invalid.json", decision.decision_id)))
    assert effect.effect == "email_fallback"
    store.forget()
    profile = store.profile("c:cus_1")
    assert not profile.reachable("sms") and f"p:{PHONE}" in profile.undeliverable
    [fallback_id] = release(store, requests)
    assert deliver(store, fallback_id, email, sms, push, requests).outcome == "sent"
    # a repeated event finds the fallback already made: nothing is sent twice
    again = handle_text(store, requests, parse(_text("text-invalid.json", decision.decision_id)))
    assert again.effect == "email_fallback"
    assert deliver(store, fallback_id, email, sms, push, requests).outcome == "already_handled"


def test_given_an_unreachable_carrier_then_the_message_falls_back_but_the_number_is_kept(world):
    store, requests, email, sms, push = world
    known_customer(store, {"sms": True, "email": True}, phone=PHONE, email="ann@example.org")
    decision = decided(store, "sms", channels=("sms", "email"))
    deliver(store, decision.decision_id, email, sms, push, requests)
    effect = handle_text(store, requests, parse(_text("text-carrier-unreachable.json", decision.decision_id)))
    assert effect.effect == "email_fallback"
    store.forget()
    assert store.profile("c:cus_1").reachable("sms")


def test_given_a_delivered_text_then_the_decision_is_delivered(world):
    store, requests, email, sms, push = world
    known_customer(store, {"sms": True}, phone=PHONE)
    decision = decided(store, "sms", channels=("sms",))
    deliver(store, decision.decision_id, email, sms, push, requests)
    assert handle_text(store, requests, parse(_text("text-delivered.json", decision.decision_id))).effect == "delivered"
    assert store.decision(decision.decision_id).status == "delivered"


def test_end_user_messaging_sms_sends_through_the_configuration_set_with_the_decision_in_its_context(aws):
    import boto3

    client = boto3.client("pinpoint-sms-voice-v2", region_name="us-east-1")
    decision = Decision(
        decision_id="d-9",
        profile_key="c:cus_1",
        trigger="cart_abandoned",
        trigger_due_at=T0,
        decided_at=T0,
        action="send",
        campaign_id="cart-abandonment",
        channel="sms",
    )
    with Stubber(client) as stub:
        stub.add_response(
            "send_text_message",
            {"MessageId": "m-1"},
            {
                "DestinationPhoneNumber": PHONE,
                "MessageBody": "hi",
                "MessageType": "PROMOTIONAL",
                "ConfigurationSetName": "nextbest-sms",
                "Context": {"decision_id": "d-9", "campaign": "cart-abandonment"},
            },
        )
        stub.add_client_error(
            "send_text_message",
            "ConflictException",
            "The destination phone number is opted out",
            modeled_fields={"Message": "opted out", "Reason": "DESTINATION_PHONE_NUMBER_OPTED_OUT"},
        )
        sender = EndUserMessagingSms("nextbest-sms", client=client)
        assert sender.send(PHONE, Message(channel="sms", text="hi"), decision) == "m-1"
        with pytest.raises(OptedOut):  # the opt-out list is the provider's; no DescribeOptedOutNumbers per text
            sender.send(PHONE, Message(channel="sms", text="hi"), decision)


# -- throttling backoff -------------------------------------------------------------------------------


def test_a_throttled_record_is_reported_failed_and_hidden_for_its_backoff(emulation):
    from aws_lambda_powertools import Logger, Metrics
    from moto.sqs.models import sqs_backends

    from infra.local.emulator import ACCOUNT, REGION, LambdaContext, _sqs_record

    url = json.loads(emulation.environment("decide")["DELIVER_QUEUE_URLS"])["email"]
    arn = next(emulation.arns[k] for k, v in emulation.physical.items() if v == url)
    sqs = emulation.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody='{"decision_id": "slow"}')
    sqs.send_message(QueueUrl=url, MessageBody='{"decision_id": "fine"}')
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    event = {"Records": [_sqs_record(m, arn) for m in messages]}

    def handle(record):
        if "slow" in record.body:
            raise Retry("Throttling")
        return "sent"

    before = datetime.now(UTC).timestamp()
    response = process(
        event, LambdaContext("deliver"), handle, None, Logger(), Metrics(namespace="t"), (Retry,), lambda: 1.0
    )
    [failed] = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    slow = next(m for m in messages if "slow" in m["Body"])
    assert failed == slow["MessageId"]
    queue = sqs_backends[ACCOUNT][REGION].queues[arn.rsplit(":", 1)[-1]]
    held = next(m for m in queue._messages if m.id == slow["MessageId"])
    assert (
        29 <= held.visible_at / 1000 - before <= 31
    )  # moto keeps ms; first receive: 30 s (jitter pinned), not the queue's 180 s


def test_a_non_throttling_error_is_not_backed_off(world):
    store, requests, email, sms, _ = world
    known_customer(store, {"push": True}, device_token=TOKEN)
    decision = decided(store, "push")

    class RefusingSns:
        def create_platform_endpoint(self, **kwargs):
            return {"EndpointArn": "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1"}

        def get_endpoint_attributes(self, **kwargs):
            return {"Attributes": {"Enabled": "true", "Token": TOKEN}}

        def publish(self, **kwargs):
            raise ClientError({"Error": {"Code": "InvalidParameter", "Message": "bad"}}, "Publish")

    result = deliver(store, decision.decision_id, email, sms, SnsPush("app", client=RefusingSns()), requests)
    assert result.outcome == "failed" and store.decision(decision.decision_id).status == "failed"
    aws.reset()
