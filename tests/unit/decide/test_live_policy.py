"""The live policy in decide: verified at load, arbitrates between campaigns and none with an exploration floor,
logs the probability it drew with, picks variant and channel, and waits for the customer's best hour."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nextbest.core.campaigns import load_campaigns, load_policy
from nextbest.core.events import LineItem
from nextbest.core.profiles import Cart, Consent, Order, Profile
from nextbest.decide import live
from nextbest.decide.engine import decide
from nextbest.decide.scoring import ModelError
from nextbest_lab import policy as lab
from nextbest_lab.ope import LoggedDecision

ROOT = Path(__file__).resolve().parents[3] / "campaigns"
CART_CAMPAIGN = next(c for c in load_campaigns(ROOT) if c.id == "cart-abandonment").model_copy(
    update={"holdout_percent": 0.0}
)
SECOND = CART_CAMPAIGN.model_copy(update={"id": "cart-second", "channels": ["email"]})
CAMPAIGNS = [CART_CAMPAIGN, SECOND]
POLICY = load_policy(ROOT).model_copy(update={"global_control_percent": 0.0})
ZONE = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)  # 10:00 in New York: outside quiet hours
DUE = T0 + timedelta(hours=1)
CART = Cart(items=[LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))], updated_at=T0)


def shopper(key: str = "c:ann", orders: list[Order] | None = None, **consent: bool) -> Profile:
    return Profile(
        key=key,
        identifiers=[key],
        email="ann@example.org",
        phone="+14155550100",
        time_zone="America/New_York",
        cart=CART,
        orders=orders or [],
        triggers={"cart_abandoned": DUE},
        consent={ch: Consent(granted=v, at=T0, source="test") for ch, v in (consent or {"email": True}).items()},
    )


def write_policy(
    directory: Path,
    uplift: dict[str, float],
    *,
    floor: float = 0.05,
    promoted: bool = True,
    unsupported: tuple[str, ...] = (),
    send_window_hours: float = 12.0,
) -> Path:
    """A policy as ``nextbest policy learn`` saves it: constant uplifts per action (a best-single-action policy)."""
    actions = [*uplift, "none"]
    encoder = lab.Encoder(["customer_scores.order_count"], [1.0], [1.0], [], [])
    coef = np.zeros((len(actions), 1))
    intercept = np.array([*uplift.values(), 0.0])
    supported = np.array([a not in unsupported for a in actions])
    learned = lab.Learned(
        encoder, actions, supported, lab.Member("best_single", {"coef": coef, "intercept": intercept}), floor,
        "revenue", 0.0,
    )  # fmt: skip
    lab.save(
        learned, directory, training={"records": 0}, gate={"promoted": promoted}, send_window_hours=send_window_hours
    )
    return directory


def cart_decision(profile: Profile, policy: live.LivePolicy | None, now: datetime = DUE):
    return decide(profile, "cart_abandoned", DUE, CAMPAIGNS, POLICY, now, "https://shop.example", live=policy)


def test_the_policy_loads_only_when_its_files_match_the_manifest_and_it_is_live(tmp_path):
    # Given a promoted policy, a refused one, and the promoted one with its arrays altered after training
    good = write_policy(tmp_path / "good", {"cart-abandonment": 1.0})
    refused = write_policy(tmp_path / "refused", {"cart-abandonment": 1.0}, promoted=False)
    # Then the first loads, with its floor and a version from its hash; the others are refused, saying why
    loaded = live.load_live_policy(good)
    assert loaded is not None and loaded.floor == 0.05 and len(loaded.version) == 12
    with pytest.raises(ModelError, match="did not promote"):
        live.load_live_policy(refused)
    with (good / live.ARRAYS_FILE).open("ab") as f:
        f.write(b"x")
    with pytest.raises(ModelError, match="does not match"):
        live.load_live_policy(good)
    # And no directory, or an empty one, means no policy: decide ranks by value
    assert live.load_live_policy("") is None and live.load_live_policy(tmp_path / "nothing") is None


def test_a_pinned_policy_is_live_though_the_gate_refused_it(tmp_path):
    refused = write_policy(tmp_path / "refused", {"cart-abandonment": 1.0}, promoted=False)
    manifest = json.loads((refused / "manifest.json").read_text())
    manifest["live"] = {"pinned_by": "marketing-lead"}
    (refused / "manifest.json").write_text(json.dumps(manifest))
    assert live.load_live_policy(refused) is not None


def test_every_open_action_keeps_the_floor_the_best_gets_the_rest_and_they_sum_to_one():
    probs = live.probabilities({"a": 1.0, "b": 3.0, "c": None, "none": 0.0}, 0.05)
    assert probs == pytest.approx({"a": 0.05, "b": 0.85, "c": 0.05, "none": 0.05})
    # floors that would pass 1 share it equally
    assert live.probabilities({"a": 1.0, "none": 0.0}, 0.9) == pytest.approx({"a": 0.5, "none": 0.5})
    # no evidence for any message: nothing gets the rest
    assert live.probabilities({"a": None, "none": 0.0}, 0.1) == pytest.approx({"a": 0.1, "none": 0.9})


def test_over_many_seeded_draws_every_eligible_action_is_chosen_about_as_often_as_its_probability(tmp_path):
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:urgency": 2.0}))
    options = [
        live.Option(CART_CAMPAIGN, ["reminder", "urgency"], ["email", "sms"], 1.0),
        live.Option(SECOND, ["reminder", "urgency"], ["email"], 1.0),
    ]
    ctx = live.context("cart_abandoned", {"order_count": 1.0})
    rng = random.Random(7)
    draws = [live.pick(policy, options, ctx, rng.random()) for _ in range(20_000)]
    probs = draws[0].probabilities
    assert len(probs) == 7 and sum(probs.values()) == pytest.approx(1.0)  # 6 messages and none
    assert all(p >= 0.05 - 1e-12 for p in probs.values())
    seen = Counter(d.action for d in draws)
    assert set(seen) == set(probs)  # every action, including none, is chosen sometimes
    for action, p in probs.items():
        assert seen[action] / len(draws) == pytest.approx(p, abs=0.01)
    # and each draw logs the probability it was made with
    assert all(d.probability == probs[d.action] for d in draws)


def test_decide_draws_campaign_variant_and_channel_and_logs_the_probability_it_used(tmp_path):
    # Given a live policy that favours the urgency variant of the cart reminder, by text
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:urgency@sms": 2.0}))
    # When decide runs for 400 customers (each decision id draws its own point)
    decisions = [cart_decision(shopper(f"c:s{i}", email=True, sms=True), policy) for i in range(400)]
    # Then each decision logs the whole distribution (summing to 1 over the actions, none included), and its
    # propensity is the probability of the action it took (no holdout or control group here)
    chosen = Counter()
    for d in decisions:
        probs = {k.removeprefix(live.PROBABILITY): v for k, v in d.scores.items() if k.startswith(live.PROBABILITY)}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5) and "none" in probs
        action = "none" if d.action == "none" else live.action_id(d.campaign_id, d.variant, d.channel)
        assert d.propensity == pytest.approx(probs[action], abs=1e-6)
        assert d.model_versions["policy"] == policy.version
        chosen[action] += 1
    # The favoured action wins most; the others (the second campaign, the other variant and channel, none) are explored
    assert chosen.most_common(1)[0][0] == "cart-abandonment:urgency@sms"
    assert {"none", "cart-second:reminder@email", "cart-abandonment:reminder@email"} <= set(chosen)
    sent = next(d for d in decisions if d.action == "send" and d.campaign_id == "cart-abandonment")
    assert sent.channel in sent.messages and sent.candidates[0].outcome == "chosen"
    assert "policy drew" in sent.candidates[0].reason and "uplift" in sent.candidates[0].reason


def test_a_policy_that_expects_no_uplift_mostly_sends_nothing_and_says_why(tmp_path):
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment": -1.0, "cart-second": -0.5}))
    decisions = [cart_decision(shopper(f"c:n{i}"), policy) for i in range(100)]
    nothing = [d for d in decisions if d.action == "none"]
    assert 75 <= len(nothing) < 100  # 1 - 3 x 5% of the time, and the floor explores the rest
    d = nothing[0]
    assert d.propensity == pytest.approx(d.scores["p:none"])
    assert all(c.outcome == "eligible" and "policy drew none" in c.reason for c in d.candidates)
    assert d.scores["uplift:cart-abandonment:reminder@email"] == -1.0


def test_without_a_policy_decide_ranks_by_value_as_before():
    d = cart_decision(shopper(), None)
    assert d.action == "send" and "highest expected value" in d.candidates[0].reason
    assert not any(k.startswith(live.PROBABILITY) for k in d.scores) and "policy" not in d.model_versions


def test_a_marketers_override_still_wins_over_the_policy(tmp_path):
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-second": 5.0}))
    campaigns = [CART_CAMPAIGN.model_copy(update={"override": True}), SECOND]
    d = decide(shopper(), "cart_abandoned", DUE, campaigns, POLICY, DUE, "https://shop.example", live=policy)
    assert d.campaign_id == "cart-abandonment" and "marketer override" in d.candidates[0].reason


def evening_buyer(key: str, **consent: bool) -> Profile:
    """Always ordered at 19:00 in New York (midnight UTC)."""
    orders = [
        Order(order_id=f"o{i}", at=datetime(2026, 10, 1 + i, 23, tzinfo=UTC), total=Decimal(40)) for i in range(3)
    ]
    return shopper(key, orders, **consent)


def test_the_message_waits_for_the_customers_best_hour_and_goes_then(tmp_path):
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:reminder@email": 3.0}))
    profile = next(
        p for p in (evening_buyer(f"c:eve{i}") for i in range(50)) if cart_decision(p, policy).action != "none"
    )  # one whose draw is a message (the floor sends nothing 5% of the time)
    # At 11:00 in New York, the reminder is deferred to 19:00 (the hour this customer orders in)
    deferred = cart_decision(profile, policy)
    assert deferred.action == "defer" and deferred.defer_until == datetime(2026, 11, 2, 19, tzinfo=ZONE).astimezone(UTC)
    # When the alarm rings at that hour, the same draw is made again and the message goes now
    then = cart_decision(profile, policy, deferred.defer_until)
    assert then.action == "send" and (then.campaign_id, then.variant) == (deferred.campaign_id, deferred.variant)
    from nextbest_cli.explain import explain

    assert "(quiet hours or the customer's best hour)" in explain(profile.key, [deferred])


def test_the_best_hour_never_falls_in_quiet_hours_nor_past_the_window(tmp_path):
    profile = evening_buyer("c:late")
    late = [Order(order_id=f"q{i}", at=datetime(2026, 10, 10 + i, 3, tzinfo=UTC), total=Decimal(9)) for i in range(5)]
    night_owl = profile.model_copy(update={"orders": profile.orders + late})  # mostly at 23:00 local
    # By text (quiet from 21:00), the night hours are skipped for the next best, 19:00
    at = live.send_at(night_owl, "sms", CART_CAMPAIGN, POLICY, DUE, DUE, timedelta(hours=12))
    assert at == datetime(2026, 11, 2, 19, tzinfo=ZONE).astimezone(UTC)
    # By e-mail (no quiet hours), the night hour wins
    by_email = live.send_at(night_owl, "email", CART_CAMPAIGN, POLICY, DUE, DUE, timedelta(hours=12))
    assert by_email is not None and by_email.astimezone(ZONE).hour == 23
    # A window too short to reach it, or a customer with no history: send now
    assert live.send_at(profile, "email", CART_CAMPAIGN, POLICY, DUE, DUE, timedelta(hours=2)) is None
    assert live.send_at(shopper(), "email", CART_CAMPAIGN, POLICY, DUE, DUE, timedelta(hours=12)) is None


def test_live_scores_equal_the_labs_for_the_same_policy_and_context(tmp_path):
    # Given a tree policy learned by the lab on a log where the action helps only customers with orders
    rng = random.Random(3)
    records = []
    for i in range(3000):
        orders = rng.randint(0, 4)
        action = rng.choice(["cart-abandonment:reminder", "none"])
        reward = (5.0 if orders >= 2 else -1.0) * (action != "none") + rng.gauss(0, 1)
        records.append(
            LoggedDecision(
                decision_id=str(i),
                context=live.context("cart_abandoned", {"order_count": float(orders), "purchase_propensity": 0.1}),
                candidates=["cart-abandonment:reminder"],
                action=action,
                propensity=0.5,
                reward=reward,
            )
        )
    lab.learn_and_gate(records, tmp_path / "p")
    learned, policy = lab.load(tmp_path / "p"), live.LivePolicy.load(tmp_path / "p")
    # Then decide's probabilities equal the lab's, record by record
    log = lab.Log.of(records[:200], "revenue", 0.0, learned.actions)
    expected = learned.probabilities(log)
    for record, row in zip(records[:200], expected, strict=True):
        uplifts = policy.uplifts(["cart-abandonment:reminder", "none"], record.context)
        got = live.probabilities(uplifts, policy.floor)
        assert [got[a] for a in log.actions] == pytest.approx(list(row))


def test_explain_shows_the_policys_uplift_and_probability_for_each_candidates_actions(tmp_path):
    from nextbest_cli.explain import explain

    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:urgency@email": 2.0}))
    decision = cart_decision(shopper("c:x", email=True), policy)
    text = explain("c:x", [decision])
    # five actions with a 5% floor: the best gets 80%
    assert "      urgency@email: uplift +2.00, p=0.800" in text
    assert "      reminder@email: uplift unknown (explored only), p=0.050" in text
    assert f"policy {policy.version}: sending nothing (uplift 0 by definition), p=0.050" in text
    assert "cart-second" in text and "p:" not in text.split("scores:")[1].splitlines()[0]


def test_held_out_customers_log_the_draw_times_the_chance_of_being_held_out(tmp_path):
    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:urgency@email": 2.0}))
    campaigns = [CART_CAMPAIGN.model_copy(update={"holdout_percent": 50.0}), SECOND]
    decisions = [
        decide(shopper(f"c:h{i}"), "cart_abandoned", DUE, campaigns, POLICY, DUE, "https://shop.example", live=policy)
        for i in range(200)
    ]
    held = [d for d in decisions if d.action == "holdout"]
    sent = [d for d in decisions if d.action == "send" and d.campaign_id == "cart-abandonment"]
    assert held and sent
    for d in held + sent:
        p = d.scores[f"p:cart-abandonment:{d.variant}@email"]
        assert d.propensity == pytest.approx(p * 0.5)  # drawn, then held out (or not) by the customer's hash


def test_a_follow_up_keeps_its_first_messages_variant_under_the_policy(tmp_path):
    from nextbest.core.campaigns import FOLLOW_UP
    from nextbest.core.profiles import MessageLog

    policy = live.LivePolicy.load(write_policy(tmp_path / "p", {"cart-abandonment:urgency@email": 2.0}))
    first = MessageLog(decision_id="d0", campaign_id="cart-abandonment", channel="email", at=T0, variant="reminder")
    trigger = FOLLOW_UP + "cart-abandonment"
    later = T0 + timedelta(hours=73)
    for i in range(20):
        profile = shopper(f"c:f{i}").model_copy(update={"messages": [first], "triggers": {trigger: later}})
        d = decide(profile, trigger, later, CAMPAIGNS, POLICY, later, "https://shop.example", live=policy)
        assert d.action == "none" or d.variant == "reminder"
        assert not any(k.startswith("p:cart-abandonment:urgency") for k in d.scores)


def test_the_send_time_never_lets_the_trigger_go_stale(tmp_path):
    profile = evening_buyer("c:stale")
    # due 20 hours ago: decide refuses a trigger a day late, so waiting until 19:00 (8 hours) would be too late
    due = DUE - timedelta(hours=20)
    assert live.send_at(profile, "email", CART_CAMPAIGN, POLICY, due, DUE, timedelta(hours=12)) is None
    assert live.send_at(profile, "email", CART_CAMPAIGN, POLICY, DUE, DUE, timedelta(hours=12)) is not None


@given(
    uplifts=st.lists(st.one_of(st.none(), st.floats(-10, 10)), min_size=1, max_size=30),
    floor=st.floats(0, 1),
    point=st.floats(0, 1, exclude_max=True),
)
def test_any_uplifts_give_a_distribution_with_the_floor_on_every_action_and_the_draw_among_them(uplifts, floor, point):
    actions = {f"a{i}": u for i, u in enumerate(uplifts)} | {"none": 0.0}
    probs = live.probabilities(actions, floor)
    assert set(probs) == set(actions) and sum(probs.values()) == pytest.approx(1.0)
    assert min(probs.values()) >= min(floor, 1 / len(actions)) - 1e-12
    assert live.draw(probs, point) in actions
