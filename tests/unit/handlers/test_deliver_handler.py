"""λ deliver in process: a queued decision is sent once; a throttled send is queued again, delayed, and never
dead-lettered; a bad request goes to its queue's DLQ."""

import json
from datetime import timedelta

import pytest
from nextbest.core.commands import delivery_request
from nextbest.core.ports import Throttled
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

QUEUE = "nextbest-deliver-email"
SMS_QUEUE = "nextbest-deliver-sms"


@pytest.fixture
def deliver(monkeypatch, now):
    module = load(
        "deliver",
        DeliverSettings,
        monkeypatch,
        dead_letter_queue_urls={QUEUE: queue_url(f"{QUEUE}-dlq"), SMS_QUEUE: queue_url(f"{SMS_QUEUE}-dlq")},
        sender="nextbest@example.com",
        configuration_set="nextbest",
        unsubscribe_url="https://unsubscribe.example/",
        signing_secret_arn=arn("secretsmanager", "secret:signing"),
        decide_queue_url=queue_url("nextbest-decide"),
    )
    module.store, module.dead_letters, module.decide = MemoryStore(), DeadLetters(), Outbox()
    module.email, module.sms, module.redelivery = Sender(), Sender(), Redelivery()
    module.requeued = {QUEUE: Outbox(), SMS_QUEUE: Outbox()}
    module.own_queue = lambda queue_arn: module.requeued[queue_arn.rsplit(":", 1)[-1]]
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


def requeued(deliver, queue: str = QUEUE) -> list[tuple[dict, int]]:
    """(body, delay in seconds) of each request deliver put back on ``queue``."""
    return [(body, delay) for body, _, delay in deliver.requeued[queue].sent]


def test_given_a_throttled_send_then_the_request_is_queued_again_delayed_and_this_message_is_done(deliver):
    decision_id = queued(deliver)
    deliver.email = Sender(Throttled("Throttling"))

    response = invoke(deliver, delivery_request(decision_id))

    # Done with this message (its receives count toward the DLQ no more); a new one waits on the same queue
    assert failures(response) == [] and deliver.redelivery.postponed == [] and deliver.dead_letters.rejected == []
    [(body, delay)] = requeued(deliver)
    assert body == {"decision_id": decision_id, "throttled": 1} and 15 <= delay <= 30  # 30 s, equal jitter
    assert deliver.store.decision(decision_id).status == "queued" and deliver.email.sent == []


def test_given_a_throttled_send_then_the_rest_of_its_batch_waits_without_calling_the_provider(deliver):
    first = queued(deliver)
    second = deliver.store.decision(first).decision.model_copy(update={"decision_id": "d-2"})
    deliver.store.put_decision(second, "queued")
    deliver.email = Sender(Throttled("Throttling"))  # would accept the next call

    response = deliver.handler(
        sqs_event(sqs_record(delivery_request(first), QUEUE), sqs_record(delivery_request("d-2"), QUEUE)),
        Context("deliver"),
    )

    assert failures(response) == [] and deliver.email.sent == []
    assert [body["decision_id"] for body, _ in requeued(deliver)] == [first, "d-2"]
    assert deliver.store.decision("d-2").status == "queued"


def test_given_a_request_throttled_again_and_again_then_it_waits_longer_each_time_and_never_reaches_the_dlq(deliver):
    decision_id = queued(deliver)
    body = delivery_request(decision_id)
    delays = []
    for receives in range(1, 12):  # an hour of throttling, far past MAX_RECEIVE_COUNT messages' worth of receives
        deliver.email = Sender(Throttled("Throttling"))
        assert failures(invoke(deliver, body, receives=min(receives, MAX_RECEIVE_COUNT))) == []
        [(again, delay)] = requeued(deliver)
        deliver.requeued[QUEUE].sent.clear()
        body = json.dumps(again)
        delays.append(delay)
    assert again["throttled"] == 11 and deliver.dead_letters.rejected == []
    assert delays[1] >= 30 and delays[4] >= 240 and max(delays) <= 900 and delays[-1] >= 450  # grows, capped

    deliver.email = Sender()  # the throttling ends: the request that comes back sends it, once
    assert failures(invoke(deliver, body)) == [] and failures(invoke(deliver, body)) == []
    assert deliver.email.sent == [("ann@example.org", decision_id)]
    assert deliver.store.decision(decision_id).status == "sent"


def test_given_the_daily_quota_spent_then_the_request_waits_the_longest_delay_sqs_allows(deliver):
    decision_id = queued(deliver)
    deliver.email = Sender(Throttled("ThrottlingException", daily=True))

    invoke(deliver, delivery_request(decision_id))

    [(_, delay)] = requeued(deliver)
    assert delay == 900 and deliver.dead_letters.rejected == []


def test_given_a_throttled_request_that_comes_back_after_quiet_hours_began_then_decide_gets_it_back(deliver, now):
    decision_id = queued(deliver)
    deliver.email = Sender(Throttled("Throttling"))
    invoke(deliver, delivery_request(decision_id, send_before=now.now() + timedelta(minutes=1)))
    [(again, _)] = requeued(deliver)
    assert again["send_before"]  # the deadline rides along

    now.advance(timedelta(minutes=5))  # quiet hours began while it waited
    deliver.email = Sender()
    invoke(deliver, json.dumps(again))

    assert deliver.email.sent == [] and deliver.store.decision(decision_id).status == "waiting"
    assert deliver.decide.bodies == [{"decision_id": decision_id}]  # a Release: decide defers it to morning


def test_given_a_bad_request_on_the_sms_queue_then_it_goes_to_the_sms_dead_letter_queue(deliver):
    response = deliver.handler(sqs_event(sqs_record('{"decision": "d-1"}', SMS_QUEUE)), Context("deliver"))

    assert failures(response) == []
    assert [(reason, source) for _, reason, source in deliver.dead_letters.rejected] == [
        ("bad_delivery_request", SMS_QUEUE)
    ]


def test_given_a_claim_held_by_another_delivery_then_the_request_backs_off_on_the_queue(deliver):
    decision_id = queued(deliver)
    assert deliver.store.claim(decision_id, "another-request:attempt")

    response = invoke(deliver, delivery_request(decision_id))

    assert len(failures(response)) == 1 and len(deliver.redelivery.postponed) == 1 and requeued(deliver) == []
    assert deliver.store.decision(decision_id).status == "sending" and deliver.email.sent == []


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
