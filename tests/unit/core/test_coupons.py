"""Coupon codes: signed codes the checkout verifies, the campaign field that asks for them, and the order that
redeems one credited to the message that carried it."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nextbest.core import coupons
from nextbest.core.attribution import attribute
from nextbest.core.campaigns import Campaign, load_campaigns
from nextbest.core.counters import funnel_key
from nextbest.core.events import LineItem, OrderPlaced
from nextbest.core.profiles import MessageLog, Profile, TriggerDelays, apply

KEY, OLD = b"k" * 64, b"o" * 64
DAY = date(2026, 12, 2)
ROOT = Path(__file__).resolve().parents[3] / "campaigns"


def test_a_signed_code_is_short_checkout_friendly_and_the_same_for_a_retried_decision():
    code = coupons.signed(KEY, "CART", "cart-abandonment", "d-1", DAY + timedelta(days=30))
    prefix, body = code.split("-")
    assert prefix == "CART" and len(body) == 16 and set(body) <= set(coupons.ALPHABET)
    assert code == coupons.signed(KEY, "CART", "cart-abandonment", "d-1", DAY + timedelta(days=30))
    assert code != coupons.signed(KEY, "CART", "cart-abandonment", "d-2", DAY + timedelta(days=30))


def test_verify_accepts_the_code_as_typed_until_it_expires_and_under_the_previous_key():
    expires = DAY + timedelta(days=30)
    code = coupons.signed(OLD, "CART", "c", "d-1", expires)
    typed = " " + code.lower().replace("0", "o").replace("1", "l") + " "
    assert coupons.verify(typed, [KEY, OLD], DAY) == expires  # rotated: the previous key still verifies
    assert coupons.verify(code, [KEY, OLD], expires) == expires  # valid through its last day
    assert coupons.verify(code, [KEY, OLD], expires + timedelta(days=1)) is None
    assert coupons.verify(code, [KEY], DAY) is None  # a key that never signed it


@given(st.integers(min_value=0, max_value=15), st.sampled_from(coupons.ALPHABET))
def test_changing_any_character_of_a_code_makes_it_invalid(position, character):
    code = coupons.signed(KEY, "CART", "c", "d-1", DAY)
    prefix, body = code.split("-")
    forged = f"{prefix}-{body[:position]}{character}{body[position + 1 :]}"
    assert (coupons.verify(forged, [KEY], DAY) is not None) == (forged == code)


def test_the_prefix_is_signed_too():
    code = coupons.signed(KEY, "CART", "c", "d-1", DAY)
    assert coupons.verify("WIN-" + code.split("-")[1], [KEY], DAY) is None
    assert coupons.verify("garbage", [KEY], DAY) is None and coupons.verify("A-!!", [KEY], DAY) is None


def campaign(**offer) -> Campaign:
    [cart] = [c for c in load_campaigns(ROOT) if c.id == "cart-abandonment"]
    return cart.model_copy(update={"offer": cart.offer.model_copy(update=offer)})


def test_the_shipped_campaigns_approvals_hold_and_setting_a_coupon_needs_a_new_one():
    [cart] = [c for c in load_campaigns(ROOT) if c.id == "cart-abandonment"]
    assert cart.status == "approved" and cart.digest() == cart.approved_digest
    assert campaign(coupon="signed").digest() != cart.approved_digest
    assert cart.coupon_prefix == "CART"


def test_a_campaign_with_a_coupon_must_show_it_in_every_variant():
    data = campaign().model_dump(mode="json") | {"status": "draft"}
    data["offer"]["coupon"] = "pool"
    with pytest.raises(ValueError, match="must show"):
        Campaign.model_validate(data)
    for variant in data["variants"]:
        variant["creative"]["text"] += "\nYour code: {{ coupon }}"
    assert Campaign.model_validate(data).offer.coupon == "pool"


T = datetime(2026, 12, 1, 9, tzinfo=UTC)


def logged(decision_id: str, campaign_id: str, at: datetime, coupon: str | None = None) -> MessageLog:
    return MessageLog(decision_id=decision_id, campaign_id=campaign_id, channel="email", at=at, coupon=coupon,
                      credit_until=at + timedelta(days=7))  # fmt: skip


def order(coupon: str | None, nb: str | None = None) -> OrderPlaced:
    item = LineItem(product_id="p", name="P", quantity=1, unit_price=Decimal(40))
    return OrderPlaced(event_id="e-1", customer_id="cus_1", occurred_at=T + timedelta(days=1), order_id="o-1",
                       items=[item], total=Decimal(40), coupon=coupon, nb=nb)  # fmt: skip


def test_an_order_redeeming_a_code_is_credited_to_the_message_that_carried_it_not_the_last_one():
    code = coupons.signed(KEY, "CART", "cart-abandonment", "d-old", DAY)
    before = Profile(
        key="c:cus_1",
        messages=[
            logged("d-old", "cart-abandonment", T, code),
            logged("d-new", "cart-abandonment", T + timedelta(hours=2), "CART-OTHER").model_copy(update={"step": 1}),
        ],
    )  # fmt: skip  d-new: its follow-up, the last touch had the order not named a code
    after = apply(before, "order.placed", order(code.lower()), TriggerDelays())
    assert after.orders[-1].decision_id == "d-old"
    credited, counters = attribute(before, after)
    [old] = [m for m in credited.messages if m.decision_id == "d-old"]
    conversions = [c for c in counters if c.attribute == "conversions" and c.sk.startswith("FUNNEL#")]
    assert [c.sk for c in conversions] == [funnel_key(old)]  # the code's message, though d-new came later
    assert old.converted_at == T + timedelta(days=1)
    assert [m.converted_at for m in credited.messages if m.decision_id == "d-new"] == [None]


def test_an_unknown_code_or_an_explicit_nb_leaves_attribution_as_it_was():
    before = Profile(key="c:cus_1", messages=[logged("d-1", "c", T, "CART-X")])
    assert apply(before, "order.placed", order("NOPE"), TriggerDelays()).orders[-1].decision_id is None
    assert apply(before, "order.placed", order("CART-X", nb="d-9"), TriggerDelays()).orders[-1].decision_id == "d-9"
    assert coupons.issued_by(before.messages, None) is None


def test_the_win_back_message_carries_its_own_signed_code_the_checkout_accepts_for_two_weeks():
    from nextbest.core import experiments
    from nextbest.core.campaigns import load_policy
    from nextbest.core.profiles import Consent, Order
    from nextbest.decide.engine import decide, record

    [winback] = [c for c in load_campaigns(ROOT) if c.id == "win-back"]
    policy = load_policy(ROOT)
    control = policy.global_control_percent
    keys = (f"c:c{i}" for i in range(1000))
    key = next(
        k for k in keys if not experiments.in_global_control(k, control) and not experiments.in_holdout(k, winback)
    )
    profile = Profile(key=key, identifiers=[key], email="ann@example.org", time_zone="UTC", order_count=1,
                      orders=[Order(order_id="o", at=T - timedelta(days=200), total=Decimal(60))], revenue=Decimal(60),
                      last_order_at=T - timedelta(days=200), triggers={"lapse": T},
                      consent={"email": Consent(granted=True, at=T, source="test")})  # fmt: skip
    issuer = coupons.Issuer(pool=None, key=lambda: KEY)  # type: ignore[arg-type]  signed only: no pool is read
    decision = decide(profile, "lapse", T, [winback], policy, T, "https://s", coupon=issuer)
    assert decision.action == "send" and decision.coupon and decision.coupon.startswith("BACK-")
    assert f"Your code: {decision.coupon}." in decision.messages["email"].text
    assert coupons.verify(decision.coupon, [KEY], T.date() + timedelta(days=14)) == T.date() + timedelta(days=14)
    assert record(profile, decision, {winback.id: winback}).messages[-1].coupon == decision.coupon
    without = decide(profile, "lapse", T, [winback], policy, T, "https://s")  # the lab's calls: no code, no line
    assert without.coupon is None and "Your code" not in without.messages["email"].text


def test_explain_names_the_code_a_message_carried_and_the_empty_pool_that_ruled_a_campaign_out():
    from nextbest.core.decision import Candidate, Decision
    from nextbest_cli.explain import explain

    sent = Decision(decision_id="d-1", profile_key="c:cus_1", trigger="lapse", trigger_due_at=T, decided_at=T,
                    action="send", campaign_id="win-back", variant="v", channel="email", coupon="BACK-1234",
                    candidates=[Candidate(campaign_id="welcome", outcome="eliminated",
                                          reason=coupons.POOL_EMPTY)])  # fmt: skip
    text = explain("c:cus_1", [sent])
    assert "coupon BACK-1234" in text and f"welcome  eliminated       -  {coupons.POOL_EMPTY}" in text


@given(st.text(min_size=1, max_size=40))
def test_a_decision_claims_from_its_own_pool_partition_first_then_from_every_other(decision_id):
    order = coupons.shards_for(decision_id)
    assert sorted(order) == list(range(coupons.POOL_SHARDS))  # an empty partition never hides the others' codes
    assert order == coupons.shards_for(decision_id)  # a retry looks where it looked before
    assert 0 <= coupons.shard_of(decision_id) < coupons.POOL_SHARDS


def test_decisions_spread_over_the_pool_partitions():
    firsts = [coupons.shards_for(f"d-{n}")[0] for n in range(1600)]
    assert min(firsts.count(s) for s in range(coupons.POOL_SHARDS)) > 60  # ~100 each: no partition is everyone's


def test_a_message_carrying_a_code_counts_as_a_code_issued_and_one_without_or_a_holdout_does_not():
    from nextbest.core.counters import COUPONS, decided
    from nextbest.core.decision import Decision

    sent = Decision(decision_id="d-1", profile_key="c:cus_1", trigger="lapse", trigger_due_at=T, decided_at=T,
                    action="send", campaign_id="win-back", variant="v", channel="email",
                    coupon="BACK-1234")  # fmt: skip
    issued = [(c.pk, c.attribute, c.by) for c in decided(sent) if c.sk == COUPONS]
    assert issued == [("s:win-back", "issued", 1)]
    plain = sent.model_copy(update={"coupon": None})
    held = sent.model_copy(update={"action": "holdout", "group": "holdout", "coupon": None})
    assert not [c for d in (plain, held) for c in decided(d) if c.sk == COUPONS]


def redeeming(n: int, coupon: str | None, days: int, total: int = 40) -> OrderPlaced:
    item = LineItem(product_id="p", name="P", quantity=1, unit_price=Decimal(total))
    return OrderPlaced(event_id=f"e-{n}", customer_id="cus_1", occurred_at=T + timedelta(days=days),
                       order_id=f"o-{n}", items=[item], total=Decimal(total), coupon=coupon)  # fmt: skip


def coupon_counts(profile: Profile, event: OrderPlaced) -> tuple[Profile, dict[str, dict[str, Decimal]]]:
    """The profile after the order, and the coupon counters its credits add, by campaign."""
    from nextbest.core.counters import COUPONS

    after = apply(profile, "order.placed", event, TriggerDelays())
    credited, counters = attribute(profile, after)
    found = {c.pk: {n: by for n, by in ((c.attribute, c.by), *c.also)} for c in counters if c.sk == COUPONS}
    return credited, found


def test_each_code_counts_as_redeemed_once_and_every_order_that_used_one_counts_with_its_revenue_even_late():
    code = coupons.signed(KEY, "BACK", "win-back", "d-1", DAY)
    profile = Profile(key="c:cus_1", messages=[logged("d-1", "win-back", T, code), logged("d-2", "cart", T, None)])
    profile, first = coupon_counts(profile, redeeming(1, code.lower().replace("0", "o"), days=1))  # as typed
    assert first == {"s:win-back": {"redeemed": 1, "orders": 1, "revenue": 40}}
    assert [m.redeemed_at for m in profile.messages] == [T + timedelta(days=1), None]
    # the same code again, three weeks on: past the attribution window, still an order that used the code
    profile, again = coupon_counts(profile, redeeming(2, code, days=21, total=25))
    assert again == {"s:win-back": {"orders": 1, "revenue": 25}}
    assert profile.messages[0].redeemed_at == T + timedelta(days=1)
    _, plain = coupon_counts(profile, redeeming(3, None, days=2))
    _, unknown = coupon_counts(profile, redeeming(4, "BACK-NOTACODE", days=2))
    assert plain == unknown == {}
