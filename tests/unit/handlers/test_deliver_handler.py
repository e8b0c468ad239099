"""λ deliver in process: a queued decision is sent once; a throttled send waits on the queue, a bad request goes
to the DLQ."""

from datetime import timedelta

import pytest
from nextbest.core.commands import delivery_request
from nextbest.core.ports import Retry
from nextbest.core.settings import MAX_RECEIVE_COUNT, DeliverSettings
from nextbest.deliver.service import CLAIM_TIMEOUT
from nextbest.memory import MemoryStore

from tests.builders import abandoned_cart
from tests.unit.handlers.harness import (
    Context,
    DeadLetters,
    Outbox,
    Redelivery,
    Sender,
    arn,
    failures,
    load,
    queue_url,
    sqs_event,
    sqs_record,
)

QUEUE = "nextbest-deliver"


@pytest.fixture
def deliver(monkeypatch, now):
    module = load(
        "deliver",
        DeliverSettings,
        monkeypatch,
        dead_letter_queue_url=queue_url(f"{QUEUE}-dlq"),
        sender="nextbest@example.com",
        configuration_set="nextbest",
        unsubscribe_url="https://unsubscribe.example/",
        signing_secret_arn=arn("secretsmanager", "secret:signing"),
        decide_queue_url=queue_url("nextbest-decide"),
    )
    module.store, module.dead_letters, module.decide = MemoryStore(), DeadLetters(), Outbox()
    module.email, module.sms, module.redelivery = Sender(), Sender(), Redelivery()
    return module


def queued(deliver) -> str:
    """A cart reminder decided for e-mail and waiting to be sent."""
    return abandoned_cart(deliver.store, {"email": True}, email="ann@example.org").decision_id


def invoke(deliver, body: str, receives: int = 1) -> dict:
    return deliver.handler(sqs_event(sqs_record(body, QUEUE, receives)), Context("deliver"))


def test_given_a_queued_decision_then_it_is_sent_by_email_and_recorded_as_sent(deliver):
    decision_id = queued(deliver)

    response = invoke(deliver, delivery_request(decision_id))

    assert failures(response) == []
    assert deliver.email.sent == [("ann@example.org", decision_id)] and deliver.sms.sent == []
    assert deliver.store.decision(decision_id).status == "sent"
    assert deliver.store.decisions[decision_id].fields["message_id"] == "msg-1"


def test_given_a_redelivered_request_then_nothing_more_is_sent(deliver):
    decision_id = queued(deliver)

    for _ in range(2):
        response = invoke(deliver, delivery_request(decision_id))
        assert failures(response) == []

    assert len(deliver.email.sent) == 1


def test_given_a_request_without_a_decision_id_then_it_is_dead_lettered(deliver):
    response = invoke(deliver, '{"decision": "d-1"}')

    assert failures(response) == []
    assert deliver.dead_letters.reasons == ["bad_delivery_request"]


def test_given_a_throttled_send_then_that_request_alone_goes_back_to_the_queue_for_later(deliver):
    first = queued(deliver)
    second = deliver.store.decision(first).decision.model_copy(update={"decision_id": "d-2"})
    deliver.store.put_decision(second, "queued")
    deliver.email = Sender(Retry("Throttling"))  # the first send is throttled, the next one goes through
    throttled, sent = sqs_record(delivery_request(first), QUEUE), sqs_record(delivery_request("d-2"), QUEUE)

    response = deliver.handler(sqs_event(throttled, sent), Context("deliver"))

    assert failures(response) == [throttled["messageId"]]  # SQS delivers it again once its postponement ends
    [(queue, seconds)] = deliver.redelivery.postponed
    assert queue == QUEUE and 15 <= seconds <= 30  # first receive: 30 s with equal jitter
    assert deliver.store.decision(first).status == "queued" and deliver.dead_letters.rejected == []
    assert deliver.email.sent == [("ann@example.org", "d-2")]


def test_given_a_send_still_throttled_on_its_last_delivery_then_it_is_dead_lettered_with_the_reason(deliver):
    decision_id = queued(deliver)
    deliver.email = Sender(Retry("Throttling"))

    response = invoke(deliver, delivery_request(decision_id), receives=MAX_RECEIVE_COUNT)

    assert failures(response) == [] and deliver.redelivery.postponed == []
    assert [reason for _, reason, _ in deliver.dead_letters.rejected] == ["throttled_after_retries"]
    assert deliver.store.decision(decision_id).status == "queued"  # redriven from the DLQ, it can still go


def test_given_a_batch_whose_every_send_is_throttled_then_each_is_retried_without_failing_the_invocation(deliver):
    decision_id = queued(deliver)
    deliver.email = Sender(Retry("Throttling"))

    response = invoke(deliver, delivery_request(decision_id))  # no error: the function did what it should

    assert (
        len(failures(response)) == 1
        and len(deliver.redelivery.postponed) == 1
        and deliver.store.decision(decision_id).status == "queued"
    )
    response = invoke(deliver, delivery_request(decision_id), receives=2)
    assert failures(response) == [] and deliver.email.sent == [("ann@example.org", decision_id)]


def test_a_claim_whose_invocation_died_is_settled_unknown_on_the_next_delivery_and_never_sent(deliver, now):
    decision_id = queued(deliver)
    assert deliver.store.claim(decision_id, "an-invocation-that-then-died")

    response = invoke(deliver, delivery_request(decision_id))  # while it may still be sending: asked again later
    assert len(failures(response)) == 1 and len(deliver.redelivery.postponed) == 1
    assert deliver.store.decision(decision_id).status == "sending"
    now.advance(CLAIM_TIMEOUT + timedelta(seconds=1))
    invoke(deliver, delivery_request(decision_id), receives=2)  # the request comes back after its visibility

    assert deliver.store.decision(decision_id).status == "unknown" and deliver.email.sent == []


def test_a_request_delivered_again_after_its_own_attempt_claimed_and_failed_settles_the_claim_at_once(deliver):
    decision_id = queued(deliver)
    assert deliver.store.claim(decision_id, "m-1:first-attempt")  # this request's first attempt, which then failed

    record = sqs_record(delivery_request(decision_id), QUEUE, 2, message_id="m-1")
    deliver.handler(sqs_event(record), Context("deliver"))

    assert deliver.store.decision(decision_id).status == "unknown" and deliver.email.sent == []
