"""``nextbest policy export``: decisions and orders as the next round's log, with the probabilities the customer
got what they got."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nextbest.core.campaigns import load_campaigns, load_policy
from nextbest_lab.policy_log import Found, export, p_send

CAMPAIGNS = load_campaigns(Path(__file__).resolve().parents[3] / "campaigns")
BY_ID = {c.id: c for c in CAMPAIGNS}
RULES = load_policy(Path(__file__).resolve().parents[3] / "campaigns")
T0 = datetime(2026, 11, 2, 15, tzinfo=UTC)
PROBS = {"p:cart-abandonment:reminder@email": 0.1, "p:cart-abandonment:urgency@email": 0.8, "p:none": 0.1}


def decision(n: int, action: str, **extra) -> dict:
    return {
        "decision_id": f"d{n}",
        "profile_key": f"c:{n}",
        "trigger": "cart_abandoned",
        "decided_at": (T0 + timedelta(minutes=n)).isoformat(),
        "action": action,
        "scores": {"order_count": 1.0, **PROBS, "uplift:cart-abandonment:urgency@email": 2.0},
    } | extra


def test_each_choice_is_logged_with_the_probability_the_customer_got_it_and_their_orders_as_reward():
    send = p_send(BY_ID["cart-abandonment"], RULES)
    found = Found(
        decisions=[
            decision(
                1, "send", campaign_id="cart-abandonment", variant="urgency", channel="email", propensity=0.8 * send
            ),
            decision(2, "holdout", campaign_id="cart-abandonment", variant="urgency", channel="email"),
            decision(3, "none"),
            decision(4, "defer", campaign_id="cart-abandonment"),  # not a choice: decided again later
            decision(
                5,
                "send",
                campaign_id="cart-abandonment",
                variant="reminder",
                channel="email",
                propensity=0.05,
                fallback_of="d1",
            ),  # a re-routing, not a choice
            decision(
                6,
                "send",
                campaign_id="cart-abandonment",
                variant="urgency",
                channel="email",
                propensity=0.45,
                scores={"purchase_propensity": 0.2},
            ),  # the value ranking's
            decision(60 * 24 * 8, "none"),  # younger than the horizon at export time
        ],
        orders={"c:1": [(T0 + timedelta(days=1), 30.0), (T0 + timedelta(days=8), 99.0)], "c:3": [(T0, 5.0)]},
        links={"c:2": "c:1"},  # merged into c:1 since
    )
    records = {r.decision_id: r for r in export(found, CAMPAIGNS, RULES, T0 + timedelta(days=8, hours=1))}
    assert set(records) == {"d1", "d2", "d3", "d6"}
    d1, d2, d3, d6 = records["d1"], records["d2"], records["d3"], records["d6"]
    # the draw, as the customer got it, with its orders within 7 days (not the one on day 8, nor one before)
    assert (d1.action, d1.propensity, d1.reward) == ("cart-abandonment:urgency@email", pytest.approx(0.8 * send), 30)
    assert sorted(d1.candidates) == ["cart-abandonment:reminder@email", "cart-abandonment:urgency@email"]
    # held out or nothing drawn: the customer got nothing, which happens with 1 - sum of pi(a) x P(not held out)
    assert d2.action == d3.action == "none"
    assert d2.propensity == pytest.approx(1 - 0.9 * send) == d3.propensity
    assert d2.reward == 30.0 and d3.reward == 0.0  # d2's profile merged into c:1: its orders count
    # the value ranking's decision: randomised over the variants and the holdout only
    assert (d6.action, d6.propensity) == ("cart-abandonment:urgency", 0.45)
    assert d6.candidates == ["cart-abandonment:reminder", "cart-abandonment:urgency"]
    assert d1.context == {"trigger": "cart_abandoned", "customer_scores": {"order_count": 1.0}}
