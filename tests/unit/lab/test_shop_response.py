"""The simulator's shoppers respond to messages: deterministic draws, a known effect, both potential outcomes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nextbest.core.events import OrderPlaced
from nextbest_lab.simulator import TRUE_EFFECTS, Effect, Exposure, PlacedOrder, ResponseModel, reaches, sample_truth

T0 = datetime(2026, 11, 3, 10, tzinfo=UTC)
HORIZON = T0 + timedelta(days=30)
CART = {"cart-abandonment": {"*": Effect(purchase=0.5, open=0.4, click=0.5)}}


def exposure(n: int = 0, *, campaign: str = "cart-abandonment", variant: str | None = "reminder",
             channel: str = "email", address: str | None = "success+cus_1@simulator.amazonses.com",
             at: datetime = T0, held_out: bool = False, customer: str = "cus_1",
             products: tuple[str, ...] = ()) -> Exposure:  # fmt: skip
    return Exposure(f"d-{n}", campaign, variant, channel, customer, at, address, products, held_out)


def test_given_the_same_decision_then_the_response_is_the_same_whoever_asks_and_in_any_order():
    first, second = ResponseModel(seed=3), ResponseModel(seed=3)
    exposures = [exposure(n) for n in range(200)]
    forwards = [first.respond(e) for e in exposures]
    backwards = [second.respond(e) for e in reversed(exposures)][::-1]
    assert forwards == backwards
    assert [r.order for r in forwards] != [ResponseModel(seed=4).respond(e).order for e in exposures]


def test_given_a_held_out_decision_then_its_would_be_response_is_drawn_exactly_as_if_it_had_been_sent():
    model = ResponseModel(seed=3)
    for n in range(100):
        assert model.respond(exposure(n, held_out=True)) == model.respond(exposure(n, held_out=False))


def test_given_no_effect_then_no_message_ever_adds_an_order_though_shoppers_still_read_it():
    model = ResponseModel({"post-purchase": {"*": Effect(purchase=0.0, open=0.5, click=0.5)}}, seed=1)
    responses = [model.respond(exposure(n, campaign="post-purchase")) for n in range(2000)]
    assert all(r.order is None for r in responses)
    assert 800 < sum(r.opened_at is not None for r in responses) < 1200
    unknown = [model.respond(exposure(n, campaign="not-in-the-model")) for n in range(200)]
    assert all(r.order is None and r.opened_at is None for r in unknown)


def test_given_a_purchase_probability_then_that_share_of_recipients_places_an_extra_order():
    model = ResponseModel(seed=5)  # the shipped truth: the reminder sells twice as well as urgency
    for variant, p in (("reminder", 0.12), ("urgency", 0.06)):
        assert TRUE_EFFECTS["cart-abandonment"][variant].purchase == p
        bought = sum(model.respond(exposure(n, variant=variant)).order is not None for n in range(5000))
        sd = (5000 * p * (1 - p)) ** 0.5
        assert abs(bought - 5000 * p) < 4 * sd


def test_given_a_response_order_then_it_is_a_valid_order_event_after_the_message_within_its_delay():
    model = ResponseModel(CART, seed=2)
    orders = [model.respond(exposure(n, products=("sku-002", "sku-999"))) for n in range(300)]
    placed = [r for r in orders if r.order is not None]
    assert placed
    for response in placed:
        order = response.order
        assert order is not None
        detail = OrderPlaced.model_validate(order["Detail"])  # what the bus would accept
        assert detail.customer_id == "cus_1" and detail.order_id == f"resp-{order['response_to']}"
        assert T0 < order["at"] <= T0 + timedelta(hours=72) and detail.occurred_at == order["at"]
        assert [i.product_id for i in detail.items] == ["sku-002"]  # what the cart held that the shop sells
        assert response.total == detail.total == Decimal("45.00")
        assert response.opened_at and response.clicked_at  # bought through the link
        assert T0 < response.opened_at < response.clicked_at < order["at"]


def test_given_a_message_that_reaches_nobody_then_nothing_happens():
    model = ResponseModel(CART, seed=2)
    for address in ("bounce+cus_1@simulator.amazonses.com", "complaint+cus_1@simulator.amazonses.com", None):
        assert not reaches("email", address)
        assert all(model.respond(exposure(n, address=address)).order is None for n in range(100))
    assert reaches("email", "ann@example.org") and reaches("sms", "+14150000001")


def test_given_a_text_then_it_can_sell_but_is_never_opened_or_clicked():
    model = ResponseModel(CART, seed=2)
    responses = [model.respond(exposure(n, channel="sms", address="+14150000001")) for n in range(300)]
    assert any(r.order is not None for r in responses)
    assert all(r.opened_at is None and r.clicked_at is None for r in responses)


def order(at: datetime, total: str = "10", response_to: str | None = None, order_id: str = "o") -> PlacedOrder:
    return PlacedOrder(order_id, at, Decimal(total), response_to)


class Fixed(ResponseModel):
    """A response model whose decisions listed in ``buyers`` buy 20.00 an hour after the message."""

    def __init__(self, buyers: set[str]) -> None:
        super().__init__({"c": {"*": Effect(purchase=1.0)}}, seed=0)
        self.buyers = buyers

    def respond(self, exposure: Exposure):
        response = super().respond(exposure)
        if exposure.decision_id not in self.buyers or response.order is None:
            return type(response)()
        at = exposure.at + timedelta(hours=1)
        order = response.order | {"at": at, "Detail": response.order["Detail"] | {"total": "20.00"}}
        return type(response)(order=order)


def test_the_truth_counts_a_conversion_only_where_the_message_made_the_difference():
    buyers = {"d-1", "d-2", "d-3"}
    exposures = [
        exposure(1, campaign="c", customer="a"),  # responds; no order of their own: +1 conversion, +20
        exposure(2, campaign="c", customer="b"),  # responds but would have bought anyway: +0, +20
        exposure(3, campaign="c", customer="c", held_out=True),  # held out, would have responded: counts too
        exposure(4, campaign="c", customer="d"),  # does not respond, buys anyway: no effect
    ]
    orders = {
        "a": [order(T0 + timedelta(hours=1), "20.00", "d-1")],
        "b": [order(T0 + timedelta(days=2), "35"), order(T0 + timedelta(hours=1), "20.00", "d-2")],
        "d": [order(T0 + timedelta(days=1), "50")],
    }
    truth = sample_truth(exposures, orders, Fixed(buyers), HORIZON)["c"]
    assert truth.recipients == 4
    assert truth.conversion == 2 / 4 and truth.revenue_per_recipient == 60 / 4
    assert truth.conversion_without == 2 / 4 and truth.revenue_without == (35 + 50) / 4


def test_the_truth_uses_the_attribution_window_cut_short_by_the_next_decision_and_the_horizon():
    first = exposure(1, campaign="c", customer="a")
    second = exposure(2, campaign="c", customer="a", at=T0 + timedelta(minutes=30))  # owns what comes after it
    alone = exposure(3, campaign="c", customer="b", at=HORIZON - timedelta(minutes=30))  # responds after the horizon
    late = exposure(4, campaign="c", customer="e", at=T0 - timedelta(days=8))  # a week and more before
    orders = {"e": [order(T0, "15")]}
    truth = sample_truth([first, second, alone, late], orders, Fixed({"d-1", "d-3"}), HORIZON)["c"]
    assert truth.conversion == 0 and truth.revenue_per_recipient == 0 and truth.conversion_without == 0


def test_given_a_message_carrying_a_code_then_the_order_it_makes_uses_that_code_and_nothing_else_changes():
    from dataclasses import replace

    model = ResponseModel(CART, seed=2)
    plain = [model.respond(exposure(n)) for n in range(100)]
    coded = [model.respond(replace(exposure(n), coupon=f"CART-{n}")) for n in range(100)]
    placed = [(p, c) for p, c in zip(plain, coded, strict=True) if p.order is not None]
    assert placed and all("coupon" not in p.order["Detail"] for p, _ in placed)
    for (p, c), n in zip(placed, [int(p.order["response_to"][2:]) for p, _ in placed], strict=True):
        assert OrderPlaced.model_validate(c.order["Detail"]).coupon == f"CART-{n}"
        assert {k: v for k, v in c.order["Detail"].items() if k != "coupon"} == p.order["Detail"]
        assert (c.opened_at, c.clicked_at) == (p.opened_at, p.clicked_at)
