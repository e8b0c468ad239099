"""A batch's events for one known customer are written together: one conditional write, exactly once each."""

from datetime import UTC, datetime, timedelta

from nextbest.core.events import CustomerIdentified, ProductViewed
from nextbest.ingest.service import ingest, ingest_batch
from nextbest.memory import MemoryStore

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def view(n: int, **ids) -> ProductViewed:
    return ProductViewed(
        event_id=f"v{n}", occurred_at=T0 + timedelta(minutes=n), product_id=f"sku-{n}", **(ids or {"customer_id": "c1"})
    )


def test_given_six_events_of_one_customer_and_a_redelivery_then_one_write_applies_the_six_once():
    store = MemoryStore()
    ingest(store, "product.viewed", view(0), {})
    writes = store.writes
    batch = [("product.viewed", view(n)) for n in range(1, 7)] + [("product.viewed", view(0))]
    results = ingest_batch(store, batch, {})
    assert [r.outcome for r in results] == ["applied"] * 6 + ["duplicate"]
    assert store.writes == writes + 1
    store.forget()
    assert [v.product_id for v in store.profile("c:c1").views] == [f"sku-{n}" for n in range(7)]


def test_given_new_identifiers_in_a_batch_then_those_events_go_one_by_one_and_still_merge():
    store = MemoryStore()
    ingest(store, "product.viewed", view(0), {})
    batch = [
        ("product.viewed", view(1)),
        ("product.viewed", view(2, anonymous_id="ck")),
        ("customer.identified", CustomerIdentified(event_id="i", occurred_at=T0, customer_id="c1", anonymous_id="ck")),
    ]
    results = ingest_batch(store, batch, {})
    assert [r.outcome for r in results] == ["applied"] * 3
    store.forget()
    assert len(store.profile("a:ck").views) == 3 and store.profile("a:ck").key == "c:c1"


def test_given_the_same_event_twice_in_one_batch_then_it_is_applied_once_in_the_shared_write():
    store = MemoryStore()
    ingest(store, "product.viewed", view(0), {})
    results = ingest_batch(
        store, [("product.viewed", view(1)), ("product.viewed", view(1)), ("product.viewed", view(2))], {}
    )
    assert [r.outcome for r in results] == ["applied", "duplicate", "applied"]
    store.forget()
    assert len(store.profile("c:c1").views) == 3
