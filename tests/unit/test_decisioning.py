"""Decide: the chosen campaign and channel, and a reason for every campaign not chosen."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from nextbest.campaigns import load_campaigns
from nextbest.decisioning import decide, decision_id
from nextbest.events import LineItem
from nextbest.profiles import Cart, Consent, Profile

CAMPAIGNS = load_campaigns(Path(__file__).resolve().parents[2] / "campaigns")
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
DUE = T0 + timedelta(hours=1)
CART = Cart(items=[LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))], updated_at=T0)


def shopper(**consent: bool) -> Profile:
    return Profile(
        key="c:c1",
        identifiers=["c:c1"],
        email="ann@example.org",
        phone="+14155550100",
        first_name="Ann",
        cart=CART,
        triggers={"cart_abandoned": DUE},
        consent={ch: Consent(granted=v, at=T0, source="test") for ch, v in consent.items()},
    )


def test_given_email_consent_then_the_cart_reminder_goes_by_email_with_the_items():
    decision = decide(shopper(email=True), "cart_abandoned", DUE, CAMPAIGNS, DUE, "https://shop.example")
    assert (decision.action, decision.campaign_id, decision.channel) == ("send", "cart-abandonment", "email")
    assert "Serum" in decision.messages["email"].text
    assert f"/c/{decision.decision_id}" in decision.messages["email"].text
    assert "sms" in decision.messages  # rendered for a fallback


def test_given_only_sms_consent_then_sms_is_chosen():
    decision = decide(shopper(email=False, sms=True), "cart_abandoned", DUE, CAMPAIGNS, DUE, "https://s")
    assert decision.channel == "sms"


def test_given_no_consent_then_nothing_is_sent_and_the_reason_is_recorded():
    decision = decide(shopper(email=False), "cart_abandoned", DUE, CAMPAIGNS, DUE, "https://s")
    assert decision.action == "none"
    [candidate] = decision.candidates
    assert candidate.outcome == "eliminated" and "email: no consent" in candidate.reason


def test_given_a_bounced_address_then_email_is_not_reachable():
    profile = shopper(email=True).model_copy(update={"email_status": "bounced"})
    decision = decide(profile, "cart_abandoned", DUE, CAMPAIGNS, DUE, "https://s")
    assert decision.action == "none" and "not reachable" in decision.candidates[0].reason


def test_given_a_purchase_since_the_cart_then_the_trigger_no_longer_holds():
    profile = shopper(email=True).model_copy(update={"last_order_at": T0 + timedelta(minutes=5)})
    decision = decide(profile, "cart_abandoned", DUE, CAMPAIGNS, DUE, "https://s")
    assert decision.action == "none" and "purchased" in decision.candidates[0].reason


def test_the_decision_id_is_deterministic_so_a_retry_finds_the_same_decision():
    assert decision_id("c:c1", "cart_abandoned", DUE) == decision_id("c:c1", "cart_abandoned", DUE)
    assert decision_id("c:c1", "cart_abandoned", DUE) != decision_id("c:c1", "cart_abandoned", T0)
