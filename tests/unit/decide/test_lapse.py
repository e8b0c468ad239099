"""Issue 14, no daily sweep: at-risk and win-back answer a buyer's lapse check, a trigger in the due index like any
other: due a week after the last order, then a week after each check, reset by a new order."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.campaigns import LAPSE_CHECK_EVERY, trigger_delays
from nextbest.core.commands import DueProfile
from nextbest.core.events import LineItem, OrderPlaced, ProductViewed
from nextbest.core.profiles import LAPSE
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import CAMPAIGNS, Collect, decider, known_customer
from tests.conftest import T0

DELAYS = trigger_delays(CAMPAIGNS)
ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
KEY = "c:cus_1"


def order(n: int, at) -> OrderPlaced:
    return OrderPlaced(
        event_id=f"o{n}", occurred_at=at, customer_id="cus_1", order_id=f"o{n}", total=Decimal(32), items=[ITEM]
    )


def test_the_lapse_check_is_set_when_an_at_risk_or_win_back_campaign_is_approved():
    assert DELAYS[LAPSE] == LAPSE_CHECK_EVERY
    assert LAPSE not in trigger_delays([c for c in CAMPAIGNS if c.trigger.kind not in ("at_risk", "win_back")])


def test_an_order_sets_the_check_a_week_later_a_view_leaves_it_and_a_new_order_moves_it(now):
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    ingest(store, "order.placed", order(1, T0), DELAYS)
    assert store.profile(KEY).triggers[LAPSE] == T0 + LAPSE_CHECK_EVERY
    assert store.index_times[KEY] <= T0 + LAPSE_CHECK_EVERY  # in the due index (post-purchase may come first)
    view = ProductViewed(event_id="v", occurred_at=T0 + timedelta(days=1), customer_id="cus_1", product_id="sku-2")
    ingest(store, "product.viewed", view, DELAYS)
    assert store.profile(KEY).triggers[LAPSE] == T0 + LAPSE_CHECK_EVERY
    ingest(store, "order.placed", order(2, T0 + timedelta(days=3)), DELAYS)
    assert store.profile(KEY).triggers[LAPSE] == T0 + timedelta(days=3) + LAPSE_CHECK_EVERY


def test_a_check_nobody_is_meant_for_records_nothing_and_sets_the_next_a_week_later_which_events_keep(now):
    store = MemoryStore()
    ingest(store, "order.placed", order(1, T0), DELAYS)  # a recent buyer: too soon for win-back, no model score
    due = T0 + LAPSE_CHECK_EVERY
    now.set(due + timedelta(minutes=2))

    decided = decider(store).due(DueProfile(profile_key=KEY), now.now())

    assert [d.trigger for d in decided] == ["post_purchase"]  # the other trigger due: no lapse decision
    assert [r.decision.trigger for r in store.decisions.values()] == ["post_purchase"]
    profile = store.profile(KEY)
    assert profile.handled[LAPSE] == due
    assert profile.triggers[LAPSE] == now.now() + LAPSE_CHECK_EVERY
    view = ProductViewed(event_id="v", occurred_at=now.now(), customer_id="cus_1", product_id="sku-2")
    ingest(store, "product.viewed", view, DELAYS)  # an event since the check does not bring it back
    assert store.profile(KEY).triggers[LAPSE] == now.now() + LAPSE_CHECK_EVERY


def test_a_lapsed_buyer_loaded_from_history_is_checked_at_once_and_won_back(now):
    store = MemoryStore()
    identified = {"email": "ann@example.org"}
    from nextbest.core.events import ConsentUpdated, CustomerIdentified

    ingest(
        store,
        "customer.identified",
        CustomerIdentified(event_id="i", occurred_at=T0, customer_id="cus_1", **identified),
        DELAYS,
    )
    ingest(
        store,
        "consent.updated",
        ConsentUpdated(event_id="k", occurred_at=T0, customer_id="cus_1", channel="email", granted=True),
        DELAYS,
    )
    ingest(store, "order.placed", order(1, T0 - timedelta(days=200)), DELAYS)  # long past: never "too late"
    assert store.index_times[KEY] == T0  # due since long ago: polled a lag after it is written

    deliveries = Collect()
    decided = decider(store, deliveries).due(DueProfile(profile_key=KEY), T0 + timedelta(minutes=2))

    [decision] = [d for d in decided if d.trigger == LAPSE]  # (history's other triggers: decided "too late")
    assert decision.action == "send" and decision.campaign_id == "win-back"
    assert len(deliveries.sent) == 1
    assert store.profile(KEY).triggers[LAPSE] == T0 + timedelta(minutes=2) + LAPSE_CHECK_EVERY
