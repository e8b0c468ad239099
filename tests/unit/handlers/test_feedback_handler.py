"""λ feedback in process: what SES reports after a send moves the decision and the profile; a notification of a
kind it does not know goes to the DLQ."""

import pytest
from nextbest.core.settings import FeedbackSettings
from nextbest.memory import MemoryStore

from tests.builders import abandoned_cart
from tests.conftest import EVENTS
from tests.unit.handlers.harness import (
    Context,
    DeadLetters,
    Outbox,
    failures,
    load,
    queue_url,
    sqs_event,
    sqs_record,
)

QUEUE = "nextbest-notifications"
ANN = "ann@example.org"


@pytest.fixture
def feedback(monkeypatch, now):
    module = load(
        "feedback",
        FeedbackSettings,
        monkeypatch,
        dead_letter_queue_url=queue_url(f"{QUEUE}-dlq"),
        decide_queue_url=queue_url("nextbest-decide"),
    )
    module.store, module.decide, module.dead_letters = MemoryStore(), Outbox(), DeadLetters()
    return module


def sent(feedback) -> str:
    """A cart reminder e-mailed to a customer who also accepts texts."""
    decision = abandoned_cart(feedback.store, {"email": True, "sms": True}, email=ANN, phone="+14155550100")
    assert feedback.store.move_decision(decision.decision_id, "queued", "sent", message_id="msg-1")
    return decision.decision_id


def invoke(feedback, sample: str, decision_id: str) -> dict:
    body = (EVENTS / "ses" / sample).read_text().replace("DECISION_ID", decision_id).replace("RECIPIENT", ANN)
    return feedback.handler(sqs_event(sqs_record(body, QUEUE)), Context("feedback"))


def test_given_a_delivery_of_a_sent_email_then_the_decision_is_delivered(feedback):
    decision_id = sent(feedback)

    response = invoke(feedback, "delivery.json", decision_id)

    assert failures(response) == []
    assert feedback.store.decision(decision_id).status == "delivered" and feedback.decide.sent == []


def test_given_a_permanent_bounce_then_the_address_is_marked_and_a_text_is_handed_to_decide(feedback):
    decision_id = sent(feedback)

    response = invoke(feedback, "bounce.json", decision_id)

    assert failures(response) == []
    assert feedback.store.decision(decision_id).status == "bounced"
    assert feedback.store.profile("c:cus_1").email_status == "bounced"
    [release] = feedback.decide.bodies  # decide applies quiet hours and caps before queueing it for deliver
    fallback = feedback.store.decision(release["decision_id"])
    assert (fallback.status, fallback.decision.channel) == ("waiting", "sms")


def test_given_a_notification_of_an_unknown_type_then_it_is_dead_lettered_and_changes_nothing(feedback):
    decision_id = sent(feedback)

    response = invoke(feedback, "unknown-type.json", decision_id)

    assert failures(response) == []
    assert feedback.dead_letters.reasons == ["unknown_notification_type"]
    assert feedback.store.decision(decision_id).status == "sent"


def test_given_the_send_event_ses_publishes_for_every_email_then_nothing_is_read_or_changed(feedback):
    decision_id = sent(feedback)
    reads = []
    read = feedback.store.decision
    feedback.store.decision = lambda did: reads.append(did) or read(did)

    response = invoke(feedback, "send.json", decision_id)

    assert failures(response) == [] and reads == []
    assert read(decision_id).status == "sent" and feedback.decide.sent == []
