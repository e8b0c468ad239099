"""Decide: arbitration by value, every guardrail, the experiment, and a reason for every campaign not chosen."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nextbest.core import experiments
from nextbest.core.campaigns import FOLLOW_UP, Campaign, Policy, load_campaigns, load_policy
from nextbest.core.decision import decision_id
from nextbest.core.events import LineItem
from nextbest.core.profiles import Cart, Consent, MessageLog, Order, Profile
from nextbest.decide.engine import decide, record

ROOT = Path(__file__).resolve().parents[3] / "campaigns"
CAMPAIGNS = load_campaigns(ROOT)
BY_ID = {c.id: c for c in CAMPAIGNS}
POLICY = load_policy(ROOT)
T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)  # 10:00 in New York: outside quiet hours
DUE = T0 + timedelta(hours=1)
CART = Cart(items=[LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))], updated_at=T0)


def treated(campaign: str = "cart-abandonment") -> str:
    """A customer key in neither the global control group nor the campaign's holdout."""
    return next(
        f"c:c{i}"
        for i in range(1000)
        if not experiments.in_global_control(f"c:c{i}", POLICY.global_control_percent)
        and not experiments.in_holdout(f"c:c{i}", BY_ID[campaign])
    )


def shopper(key: str | None = None, **consent: bool) -> Profile:
    key = key or treated()
    return Profile(
        key=key,
        identifiers=[key],
        email="ann@example.org",
        phone="+14155550100",
        first_name="Ann",
        time_zone="America/New_York",
        cart=CART,
        triggers={"cart_abandoned": DUE},
        consent={ch: Consent(granted=v, at=T0, source="test") for ch, v in consent.items()},
    )


def cart_decision(profile: Profile, now: datetime = DUE, campaigns: list[Campaign] = CAMPAIGNS, policy=POLICY):
    return decide(profile, "cart_abandoned", DUE, campaigns, policy, now, "https://shop.example")


def test_given_email_consent_then_the_cart_reminder_goes_by_email_with_the_items_and_its_experiment():
    decision = cart_decision(shopper(email=True))
    assert (decision.action, decision.campaign_id, decision.channel) == ("send", "cart-abandonment", "email")
    assert decision.group == "treatment" and decision.variant in {"reminder", "urgency"}
    assert "Serum" in decision.messages["email"].text
    link = (f"https://shop.example/cart?utm_source=nextbest&utm_medium=email&utm_campaign=cart-abandonment"
            f"&utm_content={decision.variant}&nb={decision.decision_id}")  # fmt: skip
    assert link in decision.messages["email"].text  # the shop's own cart page, tagged for attribution
    assert "sms" in decision.messages  # rendered for a fallback
    assert decision.value is not None and decision.value > 0
    expected = (1 - POLICY.global_control_percent / 100) * (1 - BY_ID["cart-abandonment"].holdout_percent / 100)
    assert decision.propensity == pytest.approx(0.5 * expected, rel=0.1)  # two arms, no data yet: ~50/50


def test_given_only_sms_consent_then_sms_is_chosen():
    assert cart_decision(shopper(email=False, sms=True)).channel == "sms"


def test_given_no_consent_then_nothing_is_sent_and_the_reason_is_recorded():
    decision = cart_decision(shopper(email=False))
    assert decision.action == "none"
    [candidate] = decision.candidates
    assert candidate.outcome == "eliminated" and "email: no consent" in candidate.reason


def test_given_a_bounced_address_then_email_is_not_reachable():
    decision = cart_decision(shopper(email=True).model_copy(update={"email_status": "bounced"}))
    assert decision.action == "none" and "not reachable" in decision.candidates[0].reason


def test_given_a_purchase_since_the_cart_then_the_trigger_no_longer_holds():
    decision = cart_decision(shopper(email=True).model_copy(update={"last_order_at": T0 + timedelta(minutes=5)}))
    assert decision.action == "none" and "purchased" in decision.candidates[0].reason


def test_a_draft_never_sends_and_an_edited_approval_is_a_draft(tmp_path):
    text = (ROOT / "cart-abandonment.toml").read_text().replace("your cart is waiting", "come back now")
    (tmp_path / "cart.toml").write_text(text)
    [edited] = load_campaigns(tmp_path)
    assert edited.status == "draft" and edited.review_note
    decision = cart_decision(shopper(email=True), campaigns=[edited])
    assert decision.action == "none" and "draft" in decision.candidates[0].reason


def test_the_global_control_group_gets_a_would_have_sent_record_and_no_message():
    key = next(f"c:g{i}" for i in range(10_000) if experiments.in_global_control(f"c:g{i}", 5.0))
    decision = cart_decision(shopper(key, email=True))
    assert (decision.action, decision.group, decision.campaign_id) == ("holdout", "global_control", "cart-abandonment")
    assert decision.channel == "email" and not decision.messages


def test_the_campaign_holdout_is_stable_and_recorded():
    campaign = BY_ID["cart-abandonment"]
    key = next(
        f"c:h{i}"
        for i in range(10_000)
        if experiments.in_holdout(f"c:h{i}", campaign) and not experiments.in_global_control(f"c:h{i}", 5.0)
    )
    first, again = cart_decision(shopper(key, email=True)), cart_decision(shopper(key, email=True))
    assert first.group == again.group == "holdout" and first.action == "holdout"


def test_holdout_shares_are_close_to_their_percentages():
    campaign = BY_ID["cart-abandonment"]
    keys = [f"c:{i}" for i in range(20_000)]
    share = sum(experiments.in_holdout(k, campaign) for k in keys) / len(keys)
    assert share == pytest.approx(campaign.holdout_percent / 100, abs=0.01)


def sent(profile: Profile, campaign: str, channel: str, at: datetime, group: str | None = None) -> Profile:
    log = MessageLog(decision_id=f"d-{at.isoformat()}", campaign_id=campaign, channel=channel, at=at,  # type: ignore[arg-type]
                     conflict_group=group)  # fmt: skip
    return profile.model_copy(update={"messages": [*profile.messages, log]})


def test_given_an_email_today_then_the_email_cap_moves_the_reminder_to_sms():
    profile = sent(shopper(email=True, sms=True), "other", "email", DUE - timedelta(hours=3))
    decision = cart_decision(profile)
    assert decision.channel == "sms"


def test_given_the_weekly_cap_reached_then_nothing_is_sent_and_the_cap_is_named():
    profile = shopper(email=True)
    for days in (1, 2, 3, 4):
        profile = sent(profile, "other", "push", DUE - timedelta(days=days))
    decision = cart_decision(profile)
    assert decision.action == "none" and "all cap: 4 of 4 in 7 days" in decision.candidates[0].reason


def test_given_a_text_at_night_in_the_customers_zone_then_it_is_deferred_to_morning():
    night = datetime(2026, 11, 3, 4, tzinfo=UTC)  # 23:00 in New York
    decision = cart_decision(shopper(sms=True), now=night)
    assert decision.action == "defer" and decision.channel == "sms"
    assert decision.defer_until == datetime(2026, 11, 3, 13, tzinfo=UTC)  # 08:00 EST
    assert decision.decision_id != decision_id(treated(), "cart_abandoned", DUE)  # the real decision comes later


def test_a_held_out_text_at_night_is_deferred_like_a_sent_one_so_both_arms_start_in_the_morning():
    campaign = BY_ID["cart-abandonment"]
    key = next(f"c:h{i}" for i in range(10_000) if experiments.in_holdout(f"c:h{i}", campaign))
    night, morning = datetime(2026, 11, 3, 4, tzinfo=UTC), datetime(2026, 11, 3, 13, tzinfo=UTC)
    assert cart_decision(shopper(key, sms=True), now=night).action == "defer"
    assert cart_decision(shopper(key, sms=True), now=morning).action == "holdout"


def test_email_is_not_held_by_quiet_hours():
    night = datetime(2026, 11, 3, 4, tzinfo=UTC)
    assert cart_decision(shopper(email=True), now=night).action == "send"


def test_given_a_recent_message_of_the_campaign_then_its_cooldown_eliminates_it():
    profile = sent(shopper(email=True), "cart-abandonment", "push", DUE - timedelta(hours=5))
    decision = cart_decision(profile)
    assert decision.action == "none" and decision.candidates[0].reason.startswith("cooldown")


def buyer(key: str, **consent: bool) -> Profile:
    orders = [Order(order_id=f"o{i}", at=T0 - timedelta(days=30 * i), total=Decimal(60)) for i in (1, 2, 3)]
    return shopper(key, **consent).model_copy(
        update={
            "cart": None,
            "orders": orders,
            "order_count": 3,
            "revenue": Decimal(180),
            "first_order_at": orders[-1].at,
            "last_order_at": orders[0].at,
        }
    )


def test_given_a_lifecycle_message_two_days_ago_then_the_conflict_group_eliminates_replenishment():
    profile = sent(buyer(treated("replenishment"), email=True), "post-purchase", "email", DUE - timedelta(days=2),
                   group="lifecycle")  # fmt: skip
    decision = decide(profile, "replenishment", DUE, CAMPAIGNS, POLICY, DUE, "https://s")
    assert decision.action == "none" and "conflict group lifecycle" in decision.candidates[0].reason


def test_an_online_only_offer_never_follows_an_in_store_only_message_for_the_same_product():
    winback = BY_ID["win-back"]
    profile = buyer(treated("win-back"), email=True)
    profile.last_order_at = DUE - timedelta(days=200)
    log = MessageLog(decision_id="d-store", campaign_id="store-event", channel="push", at=DUE - timedelta(hours=6),
                     fulfilment="in_store_only", products=["sku-9"])  # fmt: skip
    profile.messages.append(log)

    class Scores:
        lapse_risk, purchase_propensity, recommendations, model_versions = 0.9, 0.3, ["sku-9"], {}

    decision = decide(profile, "lapse", DUE, [winback], POLICY, DUE, "https://s", Scores())
    assert decision.action == "none" and "contradicts store-event" in decision.candidates[0].reason
    Scores.recommendations = ["sku-1"]
    assert decide(profile, "lapse", DUE, [winback], POLICY, DUE, "https://s", Scores()).action == "send"


def variant_of(campaign: Campaign, **changes) -> Campaign:
    return campaign.model_copy(update=changes)


def test_the_highest_expected_value_wins_unless_a_marketer_overrides():
    cart = BY_ID["cart-abandonment"]
    rich = variant_of(cart, id="rich-offer", priority=1, margin_rate=Decimal("0.6"))
    decision = cart_decision(shopper(email=True), campaigns=[cart, rich])
    assert decision.campaign_id == "rich-offer"  # more value beats a higher priority
    assert {c.campaign_id: c.outcome for c in decision.candidates} == {
        "rich-offer": "chosen",
        "cart-abandonment": "eligible",
    }
    forced = variant_of(cart, id="forced", priority=20, override=True, margin_rate=Decimal("0.1"))
    assert cart_decision(shopper(email=True), campaigns=[cart, rich, forced]).campaign_id == "forced"


def test_fatigue_makes_a_low_value_message_not_worth_sending():
    profile = buyer(treated("post-purchase"), email=True)
    for hours in (30, 60, 90):
        profile = sent(profile, "other", "push", DUE - timedelta(hours=hours))
    decision = decide(
        profile, "post_purchase", DUE, CAMPAIGNS, POLICY.model_copy(update={"caps": {}}), DUE, "https://s"
    )
    assert decision.action == "none" and "expected value not positive" in decision.candidates[0].reason


def test_thompson_sampling_favours_the_variant_that_converts_and_logs_its_probability():
    cart = BY_ID["cart-abandonment"]
    probabilities = experiments.allocation(cart, {"reminder": (400, 40), "urgency": (400, 12)})
    assert probabilities["reminder"] > 0.95 and sum(probabilities.values()) == pytest.approx(1)
    decisions = [cart_decision(shopper(treated(), email=True).model_copy(update={"key": f"c:t{i}"}))
                 for i in range(40)]  # fmt: skip
    assert {d.variant for d in decisions if d.action == "send"} == {"reminder", "urgency"}  # no data: both explored
    d = decisions[0]
    assert cart_decision(shopper(treated(), email=True).model_copy(update={"key": d.profile_key})).variant == d.variant


def test_a_follow_up_escalates_the_incentive_and_stops_after_its_steps():
    profile = shopper(email=True)
    first = cart_decision(profile)
    after = record(profile, first, BY_ID)
    trigger = FOLLOW_UP + "cart-abandonment"
    due = after.triggers[trigger]
    assert due == DUE + timedelta(hours=72) and "cart_abandoned" not in after.triggers
    follow = decide(after, trigger, due, CAMPAIGNS, POLICY, due, "https://s")
    assert (follow.action, follow.step, follow.variant) == ("send", 1, first.variant)
    assert "10% off" in follow.messages["email"].text
    done = record(after, follow, BY_ID)
    assert trigger not in done.triggers  # max_steps = 1: nothing more armed
    engaged = after.model_copy(update={"last_engaged_at": DUE + timedelta(hours=1)})
    assert "engaged" in decide(engaged, trigger, due, CAMPAIGNS, POLICY, due, "https://s").candidates[0].reason


def test_the_decision_id_is_deterministic_so_a_retry_finds_the_same_decision():
    assert decision_id("c:c1", "cart_abandoned", DUE) == decision_id("c:c1", "cart_abandoned", DUE)
    assert decision_id("c:c1", "cart_abandoned", DUE) != decision_id("c:c1", "cart_abandoned", T0)


# -- properties: no sequence of triggers breaks a cap, quiet hours, consent or a conflict rule -------------

TRIGGERS = ["cart_abandoned", "browse_abandoned", "replenishment", "post_purchase", "lapse"]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(TRIGGERS), st.integers(min_value=10, max_value=60 * 30)), min_size=1, max_size=25
    ),
    consent=st.fixed_dictionaries({ch: st.booleans() for ch in ("email", "sms", "push")}),
    customer=st.integers(min_value=0, max_value=10_000),
)
def test_no_sequence_of_triggers_breaks_a_guardrail(steps, consent, customer):
    key = f"c:p{customer}"
    profile = buyer(key, **consent).model_copy(update={"cart": CART, "identifiers": [key, "t:device-1"], "views": []})
    profile.last_order_at = T0 - timedelta(days=200)
    policy: Policy = POLICY
    now = T0

    class Scores:
        lapse_risk, purchase_propensity, recommendations, model_versions = 0.8, 0.4, ["sku-2"], {}

    for trigger, minutes in steps:
        now += timedelta(minutes=minutes)
        if trigger == "browse_abandoned":
            profile.views = []
        decision = decide(profile, trigger, now, CAMPAIGNS, policy, now, "https://s", Scores())
        if decision.action == "send":
            assert decision.channel is not None and profile.has_consent(decision.channel)
            assert decision.channel == "email" or _outside_quiet_hours(now)
        profile = record(profile, decision, BY_ID)
        _assert_within_policy(profile, policy)


def _outside_quiet_hours(now: datetime) -> bool:
    local = now.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    return 8 <= local.hour < 21


def _assert_within_policy(profile: Profile, policy: Policy) -> None:
    messages = sorted(profile.messages, key=lambda m: m.at)
    for m in messages:
        for scope, limits in policy.caps.items():
            for limit, window in ((limits.day, timedelta(days=1)), (limits.week, timedelta(days=7))):
                inside = [x for x in messages if m.at - window < x.at <= m.at and scope in ("all", x.channel)]
                assert limit is None or len(inside) <= limit, (scope, limit, inside)
        conflict = timedelta(hours=policy.conflict_window_hours)
        for x in messages:
            if (
                x is not m
                and x.conflict_group
                and x.conflict_group == m.conflict_group
                and x.campaign_id != m.campaign_id
            ):
                assert abs(x.at - m.at) >= conflict
