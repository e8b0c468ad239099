"""Issue 14, schedule churn: triggers live in a due index that a poll reads every minute, not in one Scheduler
schedule per customer. Which index time each write gives a profile, which poll finds it, and that a cart updated
ten times, a trigger that vanished and a late event each come to decide as they should."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.commands import MAX_LATENESS, DueProfile, Poll
from nextbest.core.due import DUE_SHARDS, LAG, POLL_EVERY, due_shard, index_time, poll_window
from nextbest.core.events import CartUpdated, ConsentUpdated, LineItem, OrderPlaced
from nextbest.core.profiles import Consent, Profile
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, Collect, decider, known_customer
from tests.conftest import T0

ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
KEY = "c:cus_1"
MAILABLE = {"email": "ana@example.com", "consent": {"email": Consent(granted=True, at=T0, source="test")}}
"""What makes a profile reachable: only a profile some channel may reach is in the index."""


def cart(store, event_id: str, at):
    detail = CartUpdated(event_id=event_id, occurred_at=at, customer_id="cus_1", items=[ITEM])
    return ingest(store, "cart.updated", detail, DELAYS)


def order(at):
    return OrderPlaced(
        event_id="o1", occurred_at=at, customer_id="cus_1", order_id="o1", total=Decimal(32), items=[ITEM]
    )


def polls(store, start, end) -> list[tuple[object, str]]:
    """Run the minute's poll from ``start`` to ``end``: (poll time, profile key) of every profile handed over."""
    found = []
    at = start
    while at <= end:
        queue = Collect()
        decide = decider(store)
        decide.decide_queue = queue
        decide.poll(Poll(poll_at=at))
        found += [(at, DueProfile.model_validate(body).profile_key) for body in queue.sent]
        at += POLL_EVERY
    return found


def test_the_index_time_is_the_earliest_trigger_rounded_up_to_the_minute_and_never_before_the_write():
    triggers = {"a": T0 + timedelta(minutes=61, seconds=5), "b": T0 + timedelta(hours=2)}
    profile = Profile(key=KEY, triggers=triggers, **MAILABLE)
    assert index_time(profile, T0) == T0 + timedelta(minutes=62)
    assert index_time(profile, T0 + timedelta(hours=5, seconds=1)) == T0 + timedelta(hours=5, minutes=1)  # late
    assert index_time(Profile(key=KEY, **MAILABLE), T0) is None  # nothing pending: not in the index (sparse)


def test_a_profile_no_channel_may_reach_is_not_indexed_until_one_may():
    due = {"cart_abandoned": T0 + timedelta(hours=1)}
    assert index_time(Profile(key="a:cookie", triggers=due), T0) is None  # anonymous: no address
    refused = MAILABLE | {"consent": {"email": Consent(granted=False, at=T0, source="test")}}
    assert index_time(Profile(key=KEY, triggers=due, **refused), T0) is None
    assert index_time(Profile(key=KEY, triggers=due, email_status="bounced", **MAILABLE), T0) is None
    assert index_time(Profile(key=KEY, triggers=due, **MAILABLE), T0) == T0 + timedelta(hours=1)


def test_a_cart_left_before_the_customer_consented_is_indexed_by_the_consent_and_decided_once(now):
    store = MemoryStore()
    known_customer(store, {}, email="ana@example.com")  # identified, no consent yet
    now.set(T0 + timedelta(minutes=5))
    cart(store, "c1", now.now())
    assert store.index_times[KEY] is None  # nobody to send it to: decide is not woken
    consent = ConsentUpdated(
        event_id="k2", occurred_at=T0 + timedelta(minutes=10), customer_id="cus_1", channel="email", granted=True
    )
    now.set(T0 + timedelta(minutes=10))
    ingest(store, "consent.updated", consent, DELAYS)  # consents five minutes later
    assert store.index_times[KEY] == T0 + timedelta(hours=1, minutes=5)
    assert [k for _, k in polls(store, T0, T0 + timedelta(hours=3))] == [KEY]


def test_a_trigger_already_more_than_a_day_late_when_written_is_not_indexed():
    history = Profile(key=KEY, triggers={"post_purchase": T0 - MAX_LATENESS - timedelta(minutes=1)}, **MAILABLE)
    assert index_time(history, T0) is None
    assert index_time(history, T0 - timedelta(minutes=2)) == T0 - timedelta(minutes=2)


def test_consecutive_polls_read_consecutive_windows_and_every_index_time_is_read_once_a_lag_after_it():
    first, second = poll_window(T0), poll_window(T0 + POLL_EVERY)
    assert first[1] == second[0] and second[1] - second[0] == POLL_EVERY
    assert first[1] == T0 - LAG
    due = T0 + timedelta(minutes=7)
    readers = [
        k for k in range(-5, 20) if poll_window(T0 + k * POLL_EVERY)[0] < due <= poll_window(T0 + k * POLL_EVERY)[1]
    ]
    assert readers == [7 + LAG // POLL_EVERY]


def test_shards_spread_profiles():
    shards = {due_shard(f"c:cus_{i}") for i in range(400)}
    assert shards == set(range(DUE_SHARDS))


def test_each_write_gives_the_profile_the_index_time_of_its_earliest_trigger_and_an_order_takes_it_out(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    assert store.index_times[KEY] is None
    cart(store, "c1", T0)
    assert store.index_times[KEY] == T0 + timedelta(hours=1)
    now.set(T0 + timedelta(minutes=30))
    cart(store, "c2", T0 + timedelta(minutes=30))
    assert store.index_times[KEY] == T0 + timedelta(hours=1, minutes=30)  # moved later: no alarm left behind
    ingest(store, "order.placed", order(now.now()), DELAYS)
    assert store.index_times[KEY] is None  # the cart trigger is gone with the order


def test_a_cart_updated_ten_times_is_handed_to_decide_once_at_its_last_time_and_sent_once(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    for minute in range(10):
        now.set(T0 + timedelta(minutes=3 * minute))
        cart(store, f"c{minute}", now.now())
    due = T0 + timedelta(minutes=27, hours=1)

    found = polls(store, T0, T0 + timedelta(hours=3))

    assert found == [(due + LAG, KEY)]
    deliveries = Collect()
    now.set(due + LAG)
    [decision] = decider(store, deliveries).due(DueProfile(profile_key=KEY), now.now())
    assert decision.action == "send" and decision.trigger_due_at == due and len(deliveries.sent) == 1
    [follow_up] = [t for t in store.profiles[KEY].triggers if t.startswith("follow_up.")]
    assert store.index_times[KEY] == store.profiles[KEY].triggers[follow_up]  # the next one: the follow-up's time
    assert polls(store, due + LAG, due + timedelta(hours=2)) == []


def test_a_trigger_that_vanished_before_its_time_never_reaches_decide(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    cart(store, "c1", T0)
    now.set(T0 + timedelta(minutes=20))
    ingest(store, "order.placed", order(now.now()), DELAYS)

    assert polls(store, T0, T0 + timedelta(hours=3)) == []


def test_a_late_event_whose_trigger_is_already_due_is_polled_a_lag_after_it_is_written(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    now.set(T0 + timedelta(hours=2, seconds=30))
    cart(store, "c1", T0)  # occurred two hours ago: due an hour ago, before any poll that is still to come

    found = polls(store, T0 + timedelta(minutes=1), T0 + timedelta(hours=4))

    assert found == [(T0 + timedelta(hours=2, minutes=1) + LAG, KEY)]


def test_a_profile_polled_before_its_trigger_is_due_is_left_for_a_later_poll(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    cart(store, "c1", T0)
    assert decider(store).due(DueProfile(profile_key=KEY), T0 + timedelta(minutes=59)) == []
    assert store.index_times[KEY] == T0 + timedelta(hours=1)


def test_a_poll_of_one_shard_hands_over_only_that_shards_profiles_and_a_poll_of_every_shard_all_of_them(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    cart(store, "c1", T0)
    due = store.index_times[KEY]
    at = due + LAG
    handed = {}
    for shard in (due_shard(KEY), (due_shard(KEY) + 1) % DUE_SHARDS, None):
        queue = Collect()
        decide = decider(store)
        decide.decide_queue = queue
        decide.poll(Poll(poll_at=at, shard=shard))
        handed[shard] = [DueProfile.model_validate(body).profile_key for body in queue.sent]
    assert handed == {due_shard(KEY): [KEY], (due_shard(KEY) + 1) % DUE_SHARDS: [], None: [KEY]}
