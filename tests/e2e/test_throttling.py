"""A provider throttling for an hour, on the emulation: every request is kept and sent once when it ends, and a
throttled channel holds up no other (each has its own queue)."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.local.emulator import recipients
from tests.conftest import T0
from tests.e2e.test_pipeline import dead_letters, event, put

CUSTOMERS = 6
THROTTLED_FROM, THROTTLED_UNTIL = T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=30)
"""An hour of SES refusing every send, around the carts' reminders (due an hour after the carts, at 10:00)."""


@pytest.fixture
def throttled(aws: None, cdk_out: Path, tmp_path: Path) -> Iterator[Any]:
    """The stack on moto with SES throttling every send for an hour of the emulated clock."""
    from nextbest.core import clock

    from infra.local.emulator import Emulation, Faults
    from infra.local.emulator.faults import ses_throttled

    manual = clock.ManualClock(T0)
    clock.install(manual)
    try:
        faults = Faults(rate=0.0, outages=[ses_throttled(THROTTLED_FROM, THROTTLED_UNTIL)])
        emulation = Emulation(cdk_out, manual, tmp_path / "logs", faults=faults).deploy()
        yield emulation
        assert emulation.ungranted_requests() == {}
    finally:
        clock.reset()


def shoppers(emulation: Any) -> None:
    """Six shoppers who left a cart and take e-mail, and one who takes texts only."""
    for n in range(CUSTOMERS):
        put(
            emulation,
            event("cart.updated", event_id=f"ev-cart-{n}", anonymous_id=f"anon-{n}"),
            event(
                "customer.identified",
                event_id=f"ev-id-{n}",
                customer_id=f"cus_{n}",
                anonymous_id=f"anon-{n}",
                email=f"success+{n}@simulator.amazonses.com",
                phone=None,
            ),
            event("consent.updated", event_id=f"ev-consent-{n}", customer_id=f"cus_{n}"),
        )
    put(
        emulation,
        event("cart.updated", event_id="ev-cart-text", anonymous_id="anon-text"),
        event(
            "customer.identified",
            event_id="ev-id-text",
            customer_id="cus_text",
            anonymous_id="anon-text",
            email=None,
            phone="+14155550123",
        ),
        event("consent.updated", event_id="ev-consent-text", customer_id="cus_text", channel="sms"),
    )
    emulation.drain()


def decisions(emulation: Any) -> dict[str, str]:
    """Every decision to send, by id, with its status."""
    items = emulation.client("dynamodb").scan(TableName=emulation.output("TableName"))["Items"]
    return {i["pk"]["S"]: i["status"]["S"] for i in items if i["sk"]["S"] == "DECISION" and "status" in i}


def left_on_delivery_queues(emulation: Any) -> int:
    sqs, names = emulation.client("sqs"), ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    return sum(
        int(value)
        for m in emulation.mappings
        if m.function.name == "deliver"
        for value in sqs.get_queue_attributes(QueueUrl=m.queue_url, AttributeNames=names)["Attributes"].values()
    )


def test_an_hour_of_ses_throttling_dead_letters_nothing_and_every_email_goes_once_when_it_ends(throttled):
    shoppers(throttled)

    # Given SES throttles every send from 09:30 to 10:30, when the reminders come due at 10:00
    throttled.advance(THROTTLED_UNTIL - timedelta(minutes=1))
    # Then no e-mail went, each request waits (delayed, receives at zero), and the text went at once: its own queue
    waiting = sorted(d for d, status in decisions(throttled).items() if status == "queued")
    assert len(waiting) >= CUSTOMERS - 2  # some shoppers are held out: "would have sent", never queued
    assert throttled.sent_emails() == [] and throttled.faults.injected["ses.throttle"] >= 3 * len(waiting)
    assert left_on_delivery_queues(throttled) == len(waiting)
    [(_, phone, _)] = throttled.sent_sms()
    assert phone == "+14155550123"

    # When the throttling ends, Then within the longest backoff (15 minutes) every e-mail goes, exactly once
    throttled.advance(THROTTLED_UNTIL + timedelta(minutes=20))
    sent_to = [address for message in throttled.sent_emails() for address in recipients(message)]
    assert len(sent_to) == len(set(sent_to)) == len(waiting)
    statuses = decisions(throttled)
    assert {statuses[d] for d in waiting} == {"delivered"}  # sent, and the mailbox simulator took it
    assert not {"queued", "sending", "waiting"} & set(statuses.values())
    assert left_on_delivery_queues(throttled) == 0
    assert {queue: messages for queue, messages in dead_letters(throttled).items() if messages} == {}


def test_a_delayed_message_waits_on_the_emulated_clock_and_each_mapping_knows_its_maximum_concurrency(emulation):
    sqs = emulation.client("sqs")
    mapping = next(m for m in emulation.mappings if m.function.name == "deliver")
    # Given a message sent with a 10-minute delay (a request for no decision: deliver settles it once it comes)
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody='{"decision_id": "d-1"}', DelaySeconds=600)

    def delayed() -> int:
        attributes = ["ApproximateNumberOfMessagesDelayed"]
        return int(
            sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=attributes)["Attributes"][
                "ApproximateNumberOfMessagesDelayed"
            ]
        )

    # Then it waits while the emulated clock is short of its time, whatever real time passes, and not after
    assert emulation.delays.next_due(T0 + timedelta(minutes=9)) is None and delayed() == 1
    emulation.advance(T0 + timedelta(minutes=9))
    assert delayed() == 1
    emulation.advance(T0 + timedelta(minutes=10))
    assert delayed() == 0 and emulation.delays.pending == []
    # And each of deliver's mappings carries the template's MaximumConcurrency
    assert {m.max_concurrency for m in emulation.mappings if m.function.name == "deliver"} >= {2}
    assert all(m.max_concurrency is None for m in emulation.mappings if m.function.name != "deliver")
