"""Profile rules: idempotent application, cart triggers, and merges that do not depend on order."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nextbest.core.events import CartUpdated, ConsentUpdated, LineItem, OrderPlaced, ProductViewed
from nextbest.core.profiles import (
    MAX_VIEWS,
    Consent,
    Profile,
    TriggerDelays,
    apply,
    canonical_key,
    merge,
    new_profile,
)
from nextbest.core.triggers import Watch

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
DELAYS = {"cart_abandoned": timedelta(hours=1)}
ITEM = LineItem(product_id="sku-1", name="Serum", quantity=2, unit_price=Decimal("10.00"))


def cart(event_id: str, at: datetime, items=(ITEM,), **ids) -> CartUpdated:
    return CartUpdated(event_id=event_id, occurred_at=at, items=list(items), **(ids or {"customer_id": "c1"}))


def order(event_id: str, at: datetime, order_id="o1", total="20.00") -> OrderPlaced:
    return OrderPlaced(
        event_id=event_id, occurred_at=at, customer_id="c1", order_id=order_id, items=[ITEM], total=Decimal(total)
    )


def test_given_a_cart_then_abandonment_is_due_after_the_delay():
    profile = apply(new_profile(["c:c1"]), "cart.updated", cart("e1", T0), DELAYS)
    assert profile.triggers == {"cart_abandoned": T0 + timedelta(hours=1)}
    assert profile.cart and profile.cart.value == Decimal("20.00")


def test_given_the_same_order_under_two_event_ids_then_it_counts_once():
    once = apply(new_profile(["c:c1"]), "order.placed", order("e1", T0), DELAYS)
    twice = apply(once, "order.placed", order("e2", T0), DELAYS)
    assert twice.order_count == 1 and twice.revenue == Decimal("20.00")


def test_given_a_purchase_after_the_cart_then_the_trigger_is_cancelled():
    profile = apply(new_profile(["c:c1"]), "cart.updated", cart("e1", T0), DELAYS)
    profile = apply(profile, "order.placed", order("e2", T0 + timedelta(minutes=5)), DELAYS)
    assert "cart_abandoned" not in profile.triggers
    assert profile.cart is not None and profile.cart.items == []


def test_given_an_older_cart_arriving_late_then_the_newer_cart_stays():
    newer = apply(new_profile(["c:c1"]), "cart.updated", cart("e2", T0 + timedelta(minutes=10), items=()), DELAYS)
    late = apply(newer, "cart.updated", cart("e1", T0), DELAYS)
    assert late.cart is not None and late.cart.items == [] and "cart_abandoned" not in late.triggers


def test_given_a_late_consent_grant_then_a_newer_opt_out_wins():
    optout = ConsentUpdated(
        event_id="e2", occurred_at=T0 + timedelta(hours=1), customer_id="c1", channel="email", granted=False
    )
    grant = ConsentUpdated(event_id="e1", occurred_at=T0, customer_id="c1", channel="email", granted=True)
    profile = apply(apply(new_profile(["c:c1"]), "consent.updated", optout, DELAYS), "consent.updated", grant, DELAYS)
    assert not profile.has_consent("email")


def test_views_are_bounded_whatever_the_stream():
    profile = new_profile(["a:x"])
    for n in range(MAX_VIEWS * 3):
        view = ProductViewed(
            event_id=f"v{n}", occurred_at=T0 + timedelta(seconds=n), anonymous_id="x", product_id=f"sku-{n}"
        )
        profile = apply(profile, "product.viewed", view, DELAYS)
    assert len(profile.views) == MAX_VIEWS
    assert profile.views[-1].product_id == f"sku-{MAX_VIEWS * 3 - 1}"


def test_the_canonical_key_prefers_a_customer_id_over_email_phone_and_cookie():
    assert canonical_key(["a:zz", "p:+1415", "e:x@y.z", "c:c9"]) == "c:c9"
    assert canonical_key(["a:zz", "e:x@y.z"]) == "e:x@y.z"


def _consenting(key: str, granted: bool, at: datetime) -> Profile:
    return Profile(key=key, identifiers=[key], consent={"email": Consent(granted=granted, at=at, source="t")})


def test_given_two_profiles_of_one_person_when_merged_then_an_opt_out_beats_every_older_grant():
    grant, optout = _consenting("c:c1", True, T0), _consenting("a:x", False, T0 + timedelta(days=1))
    assert not merge(grant, optout, DELAYS).has_consent("email")
    assert not merge(optout, grant, DELAYS).has_consent("email")


def test_at_the_same_instant_an_opt_out_wins_a_merge():
    grant, optout = _consenting("c:c1", True, T0), _consenting("a:x", False, T0)
    assert not merge(grant, optout, DELAYS).has_consent("email")


def test_a_re_subscription_made_after_the_opt_out_is_honoured():
    """Otherwise a customer could never opt back in, and the outcome would depend on arrival order."""
    optout, grant = _consenting("c:c1", False, T0), _consenting("a:x", True, T0 + timedelta(days=1))
    assert merge(optout, grant, DELAYS).has_consent("email")


def test_given_the_same_order_in_both_profiles_when_merged_then_it_counts_once():
    a = apply(new_profile(["c:c1"]), "order.placed", order("e1", T0), DELAYS)
    b = apply(new_profile(["a:x"]), "order.placed", order("e9", T0), DELAYS)
    merged = merge(a, b, DELAYS)
    assert merged.order_count == 1 and merged.revenue == Decimal("20.00")


events = st.lists(
    st.tuples(
        st.sampled_from(["c:c1", "a:x"]),
        st.sampled_from(["view", "cart", "order", "optout"]),
        st.integers(min_value=0, max_value=600),
    ),
    max_size=12,
)


def _build(key: str, stream, delays=DELAYS, unit=timedelta(minutes=1)) -> Profile:
    profile = new_profile([key])
    for n, (owner, kind, minute) in enumerate(stream):
        if owner != key:
            continue
        at = T0 + minute * unit
        ids = {"customer_id": "c1"} if key == "c:c1" else {"anonymous_id": "x"}
        if kind == "view":
            event, name = ProductViewed(event_id=f"e{n}", occurred_at=at, product_id="p", **ids), "product.viewed"
        elif kind == "cart":
            event, name = cart(f"e{n}", at, **ids), "cart.updated"
        elif kind == "order":
            event, name = (
                OrderPlaced(
                    event_id=f"e{n}", occurred_at=at, order_id=f"o{n}", items=[ITEM], total=Decimal("20.00"), **ids
                ),
                "order.placed",
            )
        else:
            event, name = (
                ConsentUpdated(event_id=f"e{n}", occurred_at=at, channel="email", granted=False, **ids),
                "consent.updated",
            )
        profile = apply(profile, name, event, delays)
    return profile


@settings(max_examples=150, deadline=None)
@given(stream=events)
def test_merging_is_symmetric_so_arrival_order_cannot_change_the_survivor(stream):
    a, b = _build("c:c1", stream), _build("a:x", stream)
    assert merge(a, b, DELAYS) == merge(b, a, DELAYS)
    assert merge(a, b, DELAYS).key == "c:c1"


WATCHING = TriggerDelays({"catalog:back_in_stock+0m": timedelta(0)}, watch=Watch(interest="view", back_in_stock=True))


@settings(max_examples=150, deadline=None)
@given(stream=events)
def test_merging_the_interests_catalog_campaigns_record_is_symmetric_too(stream):
    """Over weeks (an event's "minute" is an hour here), so interests are recorded, renewed and bought."""
    a, b = (_build(key, stream, WATCHING, timedelta(hours=1)) for key in ("c:c1", "a:x"))
    assert merge(a, b, WATCHING) == merge(b, a, WATCHING)


def test_aggregates_for_decisions_and_models():
    profile = new_profile(["c:c1", "t:apns-token-0001"])
    for n, day in enumerate((0, 10, 30)):
        profile = apply(profile, "order.placed", order(f"e{n}", T0 + timedelta(days=day), order_id=f"o{n}"), DELAYS)
    for n in range(3):
        view = ProductViewed(
            event_id=f"v{n}",
            occurred_at=T0 + timedelta(days=30),
            customer_id="c1",
            product_id="sku-new",
            category="fragrance",
        )
        profile = apply(profile, "product.viewed", view, DELAYS)
    now = T0 + timedelta(days=40)
    assert profile.recency(now) == timedelta(days=10)
    assert profile.inter_purchase_interval == timedelta(days=15)
    assert profile.order_count == 3 and profile.revenue == Decimal("60.00")
    assert profile.device_tokens == ["apns-token-0001"] and profile.reachable("push")
    categories = profile.affinities("categories", now)
    assert list(categories) == ["fragrance"]
    products = profile.affinities("products", now)
    assert next(iter(products)) == "sku-1"  # three orders (weight 5) outweigh three recent views (weight 1)
    later = profile.affinities("products", now + timedelta(days=30))
    assert later["sku-1"] == pytest.approx(products["sku-1"] / 2)  # half-life of 30 days


def _consent(n: int, hours: int, granted: bool) -> ConsentUpdated:
    at = T0 + timedelta(hours=hours)
    return ConsentUpdated(event_id=f"k{n}", occurred_at=at, customer_id="c1", channel="email", granted=granted)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_a_grant_remembers_the_newest_opt_out_before_it_whatever_the_order_and_a_repeated_grant_none(order):
    # Given a grant, a repeat of it, an opt-out, then a re-subscription, arriving in any order
    stream = [_consent(0, 0, True), _consent(1, 1, True), _consent(2, 2, False), _consent(3, 3, True)]
    profile = new_profile(["c:c1"])
    for n in order:
        profile = apply(profile, "consent.updated", stream[n], DELAYS)
    # Then the re-subscription stands and knows the opt-out it follows (what an older unsubscribe link is not)
    consent = profile.consent["email"]
    assert (consent.granted, consent.at, consent.withdrawn_at) == (
        True,
        T0 + timedelta(hours=3),
        T0 + timedelta(hours=2),
    )
    # and a grant that only repeats an earlier one, with no opt-out between, knows of none
    repeated = apply(
        apply(new_profile(["c:c1"]), "consent.updated", stream[0], DELAYS), "consent.updated", stream[1], DELAYS
    )
    assert repeated.consent["email"].withdrawn_at is None


def test_merging_keeps_the_newest_opt_out_behind_a_grant_from_either_side():
    a = apply(new_profile(["c:c1"]), "consent.updated", _consent(0, 0, True), DELAYS)
    b = apply(new_profile(["a:x"]), "consent.updated", _consent(1, 1, False), DELAYS)
    b = apply(b, "consent.updated", _consent(2, 2, True), DELAYS)
    for merged in (merge(a, b, DELAYS), merge(b, a, DELAYS)):
        assert merged.consent["email"].withdrawn_at == T0 + timedelta(hours=1)
