"""One feature function for training and scoring: a profile and the CSV rows of the same orders agree."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from nextbest.core import profiles
from nextbest.core.events import LineItem, OrderPlaced
from nextbest.core.features import FEATURES, features, history_of
from nextbest_lab.models import Transaction, order_logs, read_transactions, write_transactions

START = datetime(2026, 1, 5, 10, tzinfo=UTC)


def _orders(n: int) -> list[tuple[datetime, Decimal]]:
    """Irregular gaps and amounts with cents, so sums and intervals would expose any rounding difference."""
    return [
        (START + timedelta(days=3 * i + (i * i) % 7, hours=i % 5), Decimal(f"{10 + 7 * i % 13}.{i % 100:02d}"))
        for i in range(n)
    ]


def _profile(orders: list[tuple[datetime, Decimal]]) -> profiles.Profile:
    profile = profiles.new_profile(["c:cus_1"])
    for i, (at, total) in enumerate(reversed(orders)):  # arrival order must not matter
        event = OrderPlaced(
            event_id=f"ev-{i}",
            occurred_at=at,
            customer_id="cus_1",
            order_id=f"ord-{i}",
            items=[LineItem(product_id="sku-001", name="Serum", quantity=1, unit_price=total)],
            total=total,
        )
        profile = profiles.apply(profile, "order.placed", event, {})
    return profile


@pytest.mark.parametrize("count", [1, 2, 7, profiles.MAX_ORDERS + 15])
def test_given_the_same_orders_when_read_from_a_profile_or_from_csv_then_the_features_are_identical(tmp_path, count):
    orders = _orders(count)
    now = orders[-1][0] + timedelta(days=40, hours=3)
    csv = write_transactions(
        tmp_path / "t.csv",
        [Transaction("cus_1", at, total, "sku-001", 1, f"ord-{i}") for i, (at, total) in enumerate(orders)],
    )
    [log] = order_logs(read_transactions(csv)).values()

    served = features(history_of(_profile(orders)), now)
    trained = features(log.as_of(now), now)

    assert len(served) == len(FEATURES)
    assert [repr(v) for v in served] == [repr(v) for v in trained]  # nan-aware, bit for bit


def test_given_a_cut_off_when_building_history_then_orders_on_or_after_it_are_invisible():
    orders = _orders(6)
    [log] = order_logs(Transaction("c", at, total) for at, total in orders).values()
    cut = orders[3][0]
    history = log.as_of(cut)
    assert history.order_count == 3 and history.last_order_at == orders[2][0]
    assert history.revenue == sum((t for _, t in orders[:3]), Decimal(0))


def test_features_describe_recency_frequency_and_rhythm():
    orders = [
        (START, Decimal("10")),
        (START + timedelta(days=10), Decimal("30")),
        (START + timedelta(days=30), Decimal("20")),
    ]
    [log] = order_logs(Transaction("c", at, total) for at, total in orders).values()
    f = dict(zip(FEATURES, features(log.as_of(START + timedelta(days=60)), START + timedelta(days=60)), strict=True))
    assert f["recency_days"] == 30 and f["tenure_days"] == 60 and f["orders"] == 3
    assert f["mean_interval_days"] == 15 and f["recency_over_interval"] == 2
    assert f["last_interval_days"] == 20 and f["orders_30d"] == 0 and f["orders_90d"] == 3
    assert math.isclose(f["log_mean_order_value"], math.log1p(20))


def test_a_customer_without_orders_has_no_recency_rather_than_a_made_up_one():
    f = features(history_of(profiles.new_profile(["c:cus_2"])), START)
    assert math.isnan(f[FEATURES.index("recency_days")]) and f[FEATURES.index("orders")] == 0
