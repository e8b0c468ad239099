"""Whatever a producer sends, a profile item stays far below DynamoDB's 400 KB limit."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nextbest.aws.store.table import profile_item
from nextbest.core.events import CartUpdated, ConsentUpdated, CustomerIdentified, LineItem, OrderPlaced, ProductViewed
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

T0 = datetime(2026, 11, 2, tzinfo=UTC)
LIMIT = 400 * 1024


def big_items(n: int) -> list[LineItem]:
    return [
        LineItem(
            product_id=f"{'p' * 100}{n}-{i}",
            name="N" * 200,
            quantity=999,
            unit_price=Decimal("9999999999.99"),
            category="c" * 100,
        )
        for i in range(100)
    ]


def test_a_customer_with_everything_at_the_maximum_stays_under_the_item_limit():
    store = MemoryStore()
    delays = {"cart_abandoned": timedelta(hours=1)}
    for n in range(300):
        at = T0 + timedelta(minutes=n)
        common = {"customer_id": "cus_heavy", "occurred_at": at}
        ingest(
            store,
            "customer.identified",
            CustomerIdentified(
                event_id=f"i{n}",
                anonymous_id=f"{'a' * 100}{n}",
                email=f"{'e' * 200}{n}@example.org",
                phone=f"+1415{n:07d}",
                device_token=f"{'t' * 400}{n}",
                first_name="F" * 100,
                time_zone="America/Argentina/Buenos_Aires",
                **common,
            ),
            delays,
        )
        ingest(store, "cart.updated", CartUpdated(event_id=f"c{n}", items=big_items(n), **common), delays)
        ingest(
            store,
            "order.placed",
            OrderPlaced(
                event_id=f"o{n}",
                order_id=f"{'o' * 100}{n}",
                items=big_items(n),
                total=Decimal("9999999999.99"),
                **common,
            ),
            delays,
        )
        for v in range(3):
            ingest(
                store,
                "product.viewed",
                ProductViewed(
                    event_id=f"v{n}-{v}", product_id=f"{'p' * 120}{n}{v}", category=f"{'c' * 90}{n}", **common
                ),
                delays,
            )
        ingest(
            store,
            "consent.updated",
            ConsentUpdated(event_id=f"k{n}", channel="sms", granted=n % 2 == 0, **common),
            delays,
        )
    item = profile_item(store.profiles["c:cus_heavy"])  # as the DynamoDB store would write it
    size = sum(len(k) + len(next(iter(v.values()))) for k, v in item.items())
    print(f"largest profile item: {size} bytes")
    assert size < LIMIT / 4, size
    profile = store.profile("c:cus_heavy")
    assert profile.order_count == 300  # bounded lists, exact counters
