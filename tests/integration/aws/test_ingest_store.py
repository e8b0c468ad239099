"""Ingest against the real table definition on moto: identity merges, redirects, idempotency, races."""

from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.core.due import due_shard
from nextbest.core.events import CartUpdated, ConsentUpdated, CustomerIdentified, LineItem, ProductViewed
from nextbest.core.ports import Conflict
from nextbest.ingest.service import ingest

from tests.builders import table_store
from tests.conftest import T0

DELAYS = {"cart_abandoned": timedelta(hours=1)}
ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))


@pytest.fixture
def store(emulation):
    return table_store(emulation)


def view(n, **ids):
    return ProductViewed(event_id=f"v{n}", occurred_at=T0 + timedelta(minutes=n), product_id="sku-1", **ids)


def test_given_an_anonymous_session_when_the_shopper_logs_in_then_one_profile_holds_everything(store):
    ingest(store, "product.viewed", view(1, anonymous_id="anon-1"), DELAYS)
    ingest(
        store, "cart.updated", CartUpdated(event_id="c1", occurred_at=T0, anonymous_id="anon-1", items=[ITEM]), DELAYS
    )
    result = ingest(
        store,
        "customer.identified",
        CustomerIdentified(
            event_id="id1",
            occurred_at=T0 + timedelta(minutes=2),
            anonymous_id="anon-1",
            customer_id="cus_1",
            email="ann@example.org",
        ),
        DELAYS,
    )
    assert result.profile_key == "c:cus_1" and result.merged == 1
    opt_in = ConsentUpdated(event_id="k1", occurred_at=T0 + timedelta(minutes=3), customer_id="cus_1", channel="email",
                            granted=True)  # fmt: skip
    ingest(store, "consent.updated", opt_in, DELAYS)  # reachable now: the merged cart's trigger is indexed
    shard = due_shard("c:cus_1")  # the trigger moved to the surviving key's item; the redirects carry none
    assert store.due(shard, T0, T0 + timedelta(hours=2)) == ["c:cus_1"]
    assert "a:anon-1" not in store.due(due_shard("a:anon-1"), T0, T0 + timedelta(hours=2))
    store.forget()
    for key in ("a:anon-1", "c:cus_1", "e:ann@example.org"):
        profile = store.resolve([key])[key]
        assert profile is not None and profile.key == "c:cus_1"
        assert profile.cart is not None and profile.views
    late = ingest(store, "product.viewed", view(3, anonymous_id="anon-1"), DELAYS)
    assert late.profile_key == "c:cus_1"  # the redirect sends late cookie events to the survivor


def test_given_two_known_customers_linked_then_they_stay_apart_and_the_cookie_brings_its_opt_out(store):
    """Two customer ids are never merged (issue 13): the address stays linked to the customer it was linked to
    first, and the event that would have joined them is applied to the customer it names."""
    ingest(
        store,
        "consent.updated",
        ConsentUpdated(
            event_id="k1", occurred_at=T0, customer_id="cus_2", email="b@example.org", channel="email", granted=True
        ),
        DELAYS,
    )
    ingest(
        store,
        "consent.updated",
        ConsentUpdated(event_id="k2", occurred_at=T0, anonymous_id="anon-9", channel="email", granted=False),
        DELAYS,
    )
    ingest(
        store,
        "customer.identified",
        CustomerIdentified(event_id="l1", occurred_at=T0, customer_id="cus_3", anonymous_id="anon-9"),
        DELAYS,
    )
    joined = ingest(
        store,
        "customer.identified",
        CustomerIdentified(event_id="l2", occurred_at=T0, customer_id="cus_3", email="b@example.org"),
        DELAYS,
    )
    assert (joined.outcome, joined.profile_key, joined.conflicts) == ("applied", "c:cus_3", 1)
    store.forget()
    profiles = store.resolve(["c:cus_2", "c:cus_3", "a:anon-9", "e:b@example.org"])
    assert {k: p.key for k, p in profiles.items()} == {
        "c:cus_2": "c:cus_2",
        "e:b@example.org": "c:cus_2",
        "c:cus_3": "c:cus_3",
        "a:anon-9": "c:cus_3",
    }
    assert profiles["c:cus_2"].has_consent("email") and not profiles["c:cus_3"].has_consent("email")


def test_given_a_redelivered_event_then_the_profile_changes_once(store):
    event = view(1, customer_id="cus_1")
    first = ingest(store, "product.viewed", event, DELAYS)
    second = ingest(store, "product.viewed", event, DELAYS)
    assert (first.outcome, second.outcome) == ("applied", "duplicate")
    store.forget()
    assert len(store.profile("c:cus_1").views) == 1


def test_given_a_concurrent_writer_then_the_stale_write_is_refused_and_the_retry_keeps_both(store):
    ingest(store, "product.viewed", view(1, customer_id="cus_1"), DELAYS)
    stale = store.profile("c:cus_1")
    ingest(store, "product.viewed", view(2, customer_id="cus_1"), DELAYS)  # another Lambda wins the race
    with pytest.raises(Conflict):
        store.update_profile(stale)
    ingest(store, "product.viewed", view(3, customer_id="cus_1"), DELAYS)
    store.forget()
    assert [v.at for v in store.profile("c:cus_1").views] == [T0 + timedelta(minutes=n) for n in (1, 2, 3)]


def test_given_an_event_redelivered_after_its_profile_merged_into_a_customer_then_it_is_a_duplicate(store):
    """The surviving profile remembers the events of every profile merged into it."""
    event = view(1, anonymous_id="ck-1")
    assert ingest(store, "product.viewed", event, DELAYS).outcome == "applied"
    login = CustomerIdentified(event_id="login", occurred_at=T0 + timedelta(minutes=5), customer_id="cus_7",
                               anonymous_id="ck-1")  # fmt: skip
    assert ingest(store, "customer.identified", login, DELAYS).outcome == "applied"
    store.forget()
    assert ingest(store, "product.viewed", event, DELAYS).outcome == "duplicate"
    store.forget()
    assert len(store.profile("c:cus_7").views) == 1


def test_given_decide_wrote_the_profile_since_then_a_redelivered_event_is_still_a_duplicate(store):
    """Decide saves the profile with its decision by an update that leaves the remembered events alone."""
    from tests.builders import abandoned_cart

    decision = abandoned_cart(store, {"email": True}, customer="cus_8", email="eve@example.org")
    assert decision.action == "send"
    event = view(9, customer_id="cus_8")
    assert ingest(store, "product.viewed", event, DELAYS).outcome == "applied"
    store.forget()
    profile = store.profile("c:cus_8")
    assert store.move_decision(decision.decision_id, "queued", "queued", profile=profile)  # a save by decide
    store.forget()
    assert ingest(store, "product.viewed", event, DELAYS).outcome == "duplicate"


def test_given_two_workers_with_the_same_event_then_it_is_applied_once(emulation, store):
    ingest(store, "product.viewed", view(1, customer_id="cus_1"), DELAYS)
    other = table_store(emulation)
    event = view(2, customer_id="cus_1")
    other.resolve(["c:cus_1"])  # the second worker read the profile before the first applied the event
    assert ingest(store, "product.viewed", event, DELAYS).outcome == "applied"
    assert ingest(other, "product.viewed", event, DELAYS).outcome == "duplicate"
    store.forget()
    assert len(store.profile("c:cus_1").views) == 2
