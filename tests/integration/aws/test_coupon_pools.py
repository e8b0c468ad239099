"""Coupon pools on the emulated table, and a code's round trip: issued in a sent e-mail, redeemed by an order,
credited to the message that carried it."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.aws import secrets
from nextbest.aws.senders import SnsSms
from nextbest.aws.store import Store
from nextbest.core import coupons
from nextbest.core.commands import DueTrigger
from nextbest.core.coupons import POOL_EMPTY, CouponsGone, Issuer
from nextbest.core.events import CHANNELS, CartUpdated, LineItem, OrderPlaced
from nextbest.decide.service import Decider
from nextbest.deliver.service import deliver
from nextbest.ingest.service import ingest

from tests.builders import CAMPAIGNS, DELAYS, DUE, POLICY, Alarms, Collect, known_customer, ses_email, table_store
from tests.conftest import T0
from tests.integration.aws.test_attribution_counters import counters


def test_concurrent_deciders_never_give_a_code_twice_and_a_retried_decision_gets_its_own_again(emulation):
    table = emulation.output("TableName")
    codes = [f"SAVE-{n:03d}" for n in range(40)]
    assert Store(table).upload_coupons("cart", codes + codes[:5]) == (40, 0)  # a code listed twice is one code
    decisions = [f"d-{n}" for n in range(60)]
    work = decisions + decisions[::3]  # a third of the decisions retried, on another container
    given: dict[str, list[str]] = {}
    lock = threading.Lock()

    def claim(share: list[str]) -> None:
        store = Store(table)  # each worker is its own container
        for did in share:
            try:
                code = store.claim_coupon("cart", did, T0)
            except CouponsGone:
                continue
            with lock:
                given.setdefault(did, []).append(code)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(claim, [work[i::6] for i in range(6)]))
    assert all(len(set(held)) == 1 for held in given.values())  # a retry renders the code it was given
    handed = [held[0] for held in given.values()]
    assert sorted(handed) == sorted(codes)  # every code given, each to one decision only
    assert Store(table).coupons_left("cart") == 0
    assert Store(table).upload_coupons("cart", [*codes[:3], "SAVE-NEW"]) == (1, 3)  # given codes never come back
    holder = next(did for did, held in given.items() if held[0] == "SAVE-007")
    assert Store(table).coupon_holder("cart", "SAVE-007") == holder


def pool_campaigns(kind: str) -> list:
    """The repository's campaigns with the cart reminder's offer carrying a code its texts show."""
    found = []
    for campaign in CAMPAIGNS:
        if campaign.id == "cart-abandonment":
            variants = [
                v.model_copy(update={"creative": v.creative.model_copy(
                    update={"text": v.creative.text + "\nYour code: {{ coupon }}",
                            "html": v.creative.html + "<p>Your code: {{ coupon }}</p>"})})
                for v in campaign.variants
            ]  # fmt: skip
            campaign = campaign.model_copy(
                update={"offer": campaign.offer.model_copy(update={"coupon": kind}), "variants": variants}
            )
        found.append(campaign)
    return found


def cart_left(store: Store, customer: str, at=T0) -> None:
    known_customer(store, {"email": True}, customer, email=f"{customer}@example.org")
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    cart = CartUpdated(event_id=f"c-{customer}", occurred_at=at, customer_id=customer, items=[item])
    ingest(store, "cart.updated", cart, DELAYS)


def decide_cart(store: Store, customer: str, kind: str, key=None):
    queue = Collect()
    decider = Decider(store, dict.fromkeys(CHANNELS, queue), Collect(), Alarms(), pool_campaigns(kind), POLICY,
                      "https://s", coupons=Issuer(store, key))  # fmt: skip
    return decider.handle(DueTrigger(profile_key=f"c:{customer}", trigger="cart_abandoned", due_at=DUE), DUE)


@pytest.mark.parametrize("kind", ["pool", "signed"])
def test_a_code_issued_in_a_sent_email_and_redeemed_by_an_order_is_credited_to_its_message(emulation, kind):
    store = table_store(emulation)
    arn = emulation.environment("decide")["COUPON_SECRET_ARN"]
    key = lambda: secrets.signing_key(arn)  # noqa: E731  the stack's own secret, read as decide reads it
    if kind == "pool":
        store.upload_coupons("cart-abandonment", ["WELCOME-7F3K"])
    cart_left(store, "cus_1")
    decision = decide_cart(store, "cus_1", kind, key)
    assert decision is not None and decision.action == "send" and decision.coupon
    code = decision.coupon
    if kind == "signed":
        assert coupons.verify(code, secrets.signing_keys(arn), DUE.date()) is not None  # what the checkout does
    else:
        assert code == "WELCOME-7F3K"
    assert deliver(store, decision.decision_id, ses_email(emulation), SnsSms()).outcome == "sent"
    stored = store.decision(decision.decision_id)
    assert stored is not None and f"Your code: {code}" in stored.decision.messages["email"].text
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    order = OrderPlaced(event_id="o", occurred_at=DUE + timedelta(days=2), customer_id="cus_1", order_id="ord-1",
                        items=[item], total=Decimal("32.00"), coupon=code.lower())  # fmt: skip
    for _ in range(2):  # a redelivered order event counts nothing twice
        ingest(store, "order.placed", order, DELAYS)
    profile = store.profile("c:cus_1")
    assert profile is not None and profile.orders[-1].decision_id == decision.decision_id
    [message] = profile.messages
    assert (message.coupon, message.converted_at) == (code, order.occurred_at)
    found = counters(emulation, "cart-abandonment")
    assert found[f"FUNNEL#{decision.variant}#email"]["conversions"] == 1
    assert found[f"VARIANT#{decision.variant}"]["conversions"] == 1
    assert found["COUPONS"] == {"issued": 1, "redeemed": 1, "orders": 1, "revenue": Decimal("32.00")}  # the report's


def test_an_empty_pool_takes_the_campaign_out_with_a_reason_and_an_upload_brings_it_back(emulation):
    store = table_store(emulation)
    store.upload_coupons("cart-abandonment", ["ONLY-ONE"])
    cart_left(store, "cus_1")
    cart_left(store, "cus_2")
    first = decide_cart(store, "cus_1", "pool")
    assert first is not None and first.coupon == "ONLY-ONE"
    second = decide_cart(store, "cus_2", "pool")
    assert second is not None and second.campaign_id != "cart-abandonment"
    [why] = [c for c in second.candidates if c.campaign_id == "cart-abandonment"]
    assert (why.outcome, why.reason) == ("eliminated", POOL_EMPTY)  # what `nextbest explain` shows


def test_the_command_line_uploads_a_csv_counts_what_is_left_and_verifies_a_signed_code(emulation, tmp_path, capsys):
    from nextbest_cli.main import main

    table, arn = emulation.output("TableName"), emulation.environment("decide")["COUPON_SECRET_ARN"]
    codes = tmp_path / "codes.csv"
    codes.write_text("code\nSAVE-1\nSAVE-2\nSAVE-1\n\n")
    assert main(["coupons", "upload", "--table", table, "--campaign", "welcome", "--file", str(codes)]) == 0
    assert "2 codes added to welcome's pool (0 skipped: already given out); 2 left" in capsys.readouterr().out
    codes.write_text("code\nHAS SPACE\n")
    assert main(["coupons", "upload", "--table", table, "--campaign", "welcome", "--file", str(codes)]) == 2
    assert "row 2: a code is 1 to 64 printable characters, no spaces" in capsys.readouterr().err
    code = coupons.signed(secrets.signing_key(arn), "BACK", "win-back", "d-1", T0.date() + timedelta(days=14))
    assert main(["coupons", "verify", code, "--secret", arn]) == 0
    assert capsys.readouterr().out.strip() == f"valid until {(T0.date() + timedelta(days=14)).isoformat()}"
    assert main(["coupons", "verify", code[:-1] + ("0" if code[-1] != "0" else "1"), "--secret", arn]) == 1
