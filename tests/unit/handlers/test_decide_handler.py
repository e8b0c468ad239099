"""λ decide in process, on the repository's campaigns and rules only: the minute's poll hands over the profiles due,
each of which becomes a decision and a delivery request; anything else goes to the DLQ."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.core.commands import DueProfile, DueTrigger, Poll
from nextbest.core.coupons import POOL_EMPTY, Issuer
from nextbest.core.due import LAG
from nextbest.core.events import CHANNELS, CartUpdated, ConsentUpdated, CustomerIdentified, LineItem
from nextbest.core.experiments import in_global_control, in_holdout
from nextbest.core.settings import MAX_RECEIVE_COUNT, DecideSettings
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, DUE, known_customer
from tests.conftest import T0
from tests.unit.handlers.harness import (
    ROOT,
    Alarms,
    Context,
    DeadLetters,
    Outbox,
    arn,
    failures,
    load,
    queue_url,
    sqs_event,
    sqs_record,
)

QUEUE = "nextbest-due"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics")  # no decision, no metric


@pytest.fixture
def decide(monkeypatch, now):
    module = load(
        "decide",
        DecideSettings,
        monkeypatch,
        dead_letter_queue_url=queue_url(f"{QUEUE}-dlq"),
        schedule_group="nextbest",
        decide_queue_arn=arn("sqs", QUEUE),
        scheduler_role_arn=arn("iam", "role/scheduler"),
        deliver_queue_urls={channel: queue_url(f"nextbest-deliver-{channel}") for channel in CHANNELS},
        decide_queue_url=queue_url(QUEUE),
        site_url="https://shop.example",
        campaigns_dir=str(ROOT / "campaigns"),
        models_dir="",
    )
    decider = module.decider
    decider.store, decider.scheduler = MemoryStore(), Alarms()
    decider.deliver, decider.decide_queue = {channel: Outbox() for channel in CHANNELS}, Outbox()
    module.dead_letters = DeadLetters()
    return module


def invoke(decide, *bodies: str, receives: int = 1) -> dict:
    records = (sqs_record(body, QUEUE, receives) for body in bodies)
    return decide.handler(sqs_event(*records), Context("decide"))


def cart_left(store: MemoryStore, customer: str) -> DueTrigger:
    """A customer who accepts e-mail leaves a cart at T0; its alarm rings at DUE."""
    known_customer(store, {"email": True}, customer, email=f"{customer}@example.org")
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id=customer, items=[item]), DELAYS)
    return DueTrigger(profile_key=f"c:{customer}", trigger="cart_abandoned", due_at=DUE)


def treated(decide) -> str:
    """A customer in neither the global control group nor the cart campaign's holdout (both are by key)."""
    policy, campaign = decide.decider.policy, decide.decider.by_id["cart-abandonment"]
    return next(
        customer
        for customer in (f"cus_{n}" for n in range(100))
        if not in_global_control(f"c:{customer}", policy.global_control_percent)
        and not in_holdout(f"c:{customer}", campaign)
    )


def test_given_a_due_cart_trigger_then_a_decision_is_recorded_and_its_delivery_requested(decide, now):
    store = decide.decider.store
    due = cart_left(store, treated(decide))
    now.set(DUE)

    response = invoke(decide, due.model_dump_json())

    assert failures(response) == [] and decide.dead_letters.rejected == []
    [request] = decide.decider.deliver["email"].bodies  # on the e-mail queue, and no other channel's
    assert decide.decider.deliver["sms"].bodies == decide.decider.deliver["push"].bodies == []
    stored = store.decision(request["decision_id"])
    assert stored.status == "queued"
    assert (stored.decision.campaign_id, stored.decision.channel) == ("cart-abandonment", "email")
    assert decide.models is None  # no model set configured: rules only


def test_given_the_same_alarm_twice_then_one_decision_is_made_and_every_request_names_it(decide, now):
    due = cart_left(decide.decider.store, treated(decide))
    now.set(DUE)

    invoke(decide, due.model_dump_json())
    invoke(decide, due.model_dump_json())

    [decision_id] = decide.decider.store.decisions
    # A ring while the decision is still queued asks again (deliver's claim sends it once); see the next test.
    assert {body["decision_id"] for body in decide.decider.deliver["email"].bodies} == {decision_id}


def test_given_a_record_that_fails_on_its_last_delivery_then_it_is_dead_lettered_with_a_reason(decide, now):
    due = cart_left(decide.decider.store, treated(decide))
    now.set(DUE)

    class Broken:
        def send(self, body, attributes=None, delay_seconds=0):
            raise ConnectionError("the deliver queue is unreachable")

    decide.decider.deliver = dict.fromkeys(CHANNELS, Broken())
    response = invoke(decide, due.model_dump_json(), receives=MAX_RECEIVE_COUNT)

    assert failures(response) == []
    [(body, reason, source)] = decide.dead_letters.rejected
    assert (body, reason, source) == (due.model_dump_json(), "failed_after_retries", QUEUE)


def test_given_a_crash_after_the_commit_then_the_retry_requests_the_delivery(decide, now):
    due = cart_left(decide.decider.store, treated(decide))
    now.set(DUE)
    queues = decide.decider.deliver
    outbox = queues["email"]

    class Crashing:
        def send(self, body, attributes=None, delay_seconds=0):
            raise ConnectionError("the invocation dies before the request is queued")

    decide.decider.deliver = dict.fromkeys(CHANNELS, Crashing())
    assert len(failures(invoke(decide, due.model_dump_json()))) == 1  # SQS will deliver it again
    decide.decider.deliver = queues
    assert decide.decider.store.decisions and outbox.bodies == []

    invoke(decide, due.model_dump_json())

    [decision_id] = decide.decider.store.decisions
    assert [body["decision_id"] for body in outbox.bodies] == [decision_id]


def test_given_a_body_that_is_no_decide_command_then_it_is_dead_lettered(decide):
    response = invoke(decide, '{"decision_id": "d-1", "trigger": "cart"}')

    assert failures(response) == []
    assert decide.dead_letters.reasons == ["bad_due_trigger"]


def test_given_a_poll_then_every_profile_due_in_its_window_is_handed_over_in_batches_and_then_decided(decide, now):
    store = decide.decider.store
    customers = [treated(decide)] + [f"cus_x{n}" for n in range(11)]
    cart_left(store, customers[0])
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    for customer in customers[1:]:  # more carts than one SendMessageBatch takes
        consent = ConsentUpdated(event_id=f"k-{customer}", occurred_at=T0, customer_id=customer, channel="email",
                                 granted=True)  # fmt: skip
        ingest(store, "consent.updated", consent, DELAYS)
        identified = CustomerIdentified(event_id=f"i-{customer}", occurred_at=T0, customer_id=customer,
                                        email=f"{customer}@example.org")  # fmt: skip
        ingest(store, "customer.identified", identified, DELAYS)
        cart = CartUpdated(event_id=f"c-{customer}", occurred_at=T0, customer_id=customer, items=[item])
        ingest(store, "cart.updated", cart, DELAYS)
    assert {c: store.index_times[f"c:{c}"] for c in customers} == dict.fromkeys(customers, DUE)
    now.set(DUE + LAG)

    assert failures(invoke(decide, Poll(poll_at=DUE + LAG - timedelta(minutes=1)).model_dump_json())) == []
    assert decide.decider.decide_queue.sent == []  # the poll a minute before reads the window before DUE
    assert failures(invoke(decide, Poll(poll_at=DUE + LAG).model_dump_json())) == []

    handed = decide.decider.decide_queue.bodies
    assert sorted(DueProfile.model_validate(b).profile_key for b in handed) == sorted(f"c:{c}" for c in customers)
    assert sum(decide.decider.decide_queue.batches) == len(customers)  # SendMessageBatch, never one by one
    assert failures(invoke(decide, *(DueProfile.model_validate(b).model_dump_json() for b in handed))) == []
    assert {stored.decision.trigger for stored in map(store.decision, store.decisions)} == {"cart_abandoned"}
    assert decide.decider.deliver["email"].bodies and decide.decider.scheduler.armed == []


def test_given_a_pool_campaign_out_of_codes_then_nothing_is_sent_and_the_miss_is_counted_for_its_alarm(
    decide, now, capsys
):
    decider = decide.decider
    cart = decider.by_id["cart-abandonment"]
    pooled = cart.model_copy(update={"offer": cart.offer.model_copy(update={"coupon": "pool"})})
    decider.campaigns = [pooled if c.id == cart.id else c for c in decider.campaigns]
    decider.by_id[cart.id] = pooled
    decider.coupons = Issuer(decider.store)  # the table's pool, empty: nobody uploaded codes
    due = cart_left(decider.store, treated(decide))
    now.set(DUE)

    response = invoke(decide, due.model_dump_json())

    assert failures(response) == [] and decide.dead_letters.rejected == []
    assert all(outbox.bodies == [] for outbox in decider.deliver.values())
    [decision_id] = decider.store.decisions
    [why] = [c for c in decider.store.decision(decision_id).decision.candidates if c.campaign_id == cart.id]
    assert why.reason == POOL_EMPTY
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["CouponPoolEmpty"] == [1.0]  # what the CouponPoolEmpty alarm watches
