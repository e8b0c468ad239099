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


def test_custom_events_and_dates_at_their_maximum_add_a_bounded_few_kilobytes():
    """Every watched event name with properties at their 1 KB limit (incompressible), and dates under many names: the
    profile keeps the latest 10 events and 20 dates, so it grows by a bound, not by what the shop publishes."""
    import hashlib

    from nextbest.core.events import CustomEvent
    from nextbest.core.profiles import MAX_DATES, MAX_OCCURRENCES, TriggerDelays

    names = [f"thing{i:02}.happened" for i in range(30)]
    delays = TriggerDelays({f"event:{name}+60m": timedelta(hours=1) for name in names})
    store = MemoryStore()
    for n, name in enumerate(names * 3):
        at = T0 + timedelta(minutes=n)
        noise = {f"k{i:02}": hashlib.sha256(f"{n}-{i}".encode()).hexdigest()[:40] for i in range(20)}
        event = CustomEvent(event_id=f"e{n}", occurred_at=at, customer_id="cus_heavy", name=name, properties=noise)
        ingest(store, "custom.event", event, delays)
        dates = {f"date_{n}_{i}": T0.date() + timedelta(days=i) for i in range(10)}
        identified = CustomerIdentified(event_id=f"i{n}", occurred_at=at, customer_id="cus_heavy", dates=dates)
        ingest(store, "customer.identified", identified, delays)
    profile = store.profile("c:cus_heavy")
    assert profile is not None
    assert len(profile.occurrences) == MAX_OCCURRENCES and len(profile.dates) == MAX_DATES
    assert len(profile.triggers) == MAX_OCCURRENCES  # a trigger only for an event still remembered
    item = profile_item(profile)
    size = sum(len(k) + len(next(iter(v.values()))) for k, v in item.items())
    print(f"profile item with custom events and dates at their maximum: {size} bytes")
    assert size < 16 * 1024, size
