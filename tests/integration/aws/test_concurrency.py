"""Concurrent writers on the real table definition: no update is ever lost."""

import random
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

from nextbest.aws.store import Store
from nextbest.core.events import LineItem, OrderPlaced
from nextbest.core.ports import Conflict
from nextbest.ingest.service import ingest

from tests.builders import erasure_key
from tests.conftest import T0

CUSTOMERS = [f"cus_{n}" for n in range(4)]
ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("1.00"))


def test_given_four_workers_and_2000_orders_on_the_same_customers_then_each_is_counted_once(emulation):
    rng = random.Random(3)
    orders = [
        OrderPlaced(
            event_id=f"e{n}",
            order_id=f"o{n}",
            occurred_at=T0 + timedelta(seconds=n),
            customer_id=rng.choice(CUSTOMERS),
            items=[ITEM],
            total=Decimal(rng.randint(1, 9)),
        )
        for n in range(2000)
    ]
    redelivered = rng.sample(orders, 200)  # at-least-once delivery: some arrive twice, on other workers
    work = orders + redelivered
    rng.shuffle(work)
    table, key = emulation.output("TableName"), erasure_key(emulation)
    conflicts = Counter()

    class CountingStore(Store):
        def _write(self, puts):
            try:
                super()._write(puts)
            except Conflict:
                conflicts["lost_race"] += 1  # another worker changed the profile since it was read
                raise

    def worker(share):
        store = CountingStore(table, erasure_key=key)  # each worker is its own Lambda instance with its own cache
        pending = list(share)
        while pending:
            event = pending.pop(0)
            store.forget()
            try:
                conflicts[ingest(store, "order.placed", event, {}).outcome] += 1
            except Conflict:
                conflicts["gave_up"] += 1
                pending.append(event)  # SQS would redeliver it

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so reads and writes of workers interleave
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(worker, [work[i::4] for i in range(4)]))
    finally:
        sys.setswitchinterval(interval)

    assert conflicts["lost_race"] > 0, "the workers never raced: the test would prove nothing"
    assert conflicts["duplicate"] == len(redelivered)
    store = Store(table)
    for customer in CUSTOMERS:
        mine = [o for o in orders if o.customer_id == customer]
        profile = store.profile(f"c:{customer}")
        assert profile.order_count == len(mine)
        assert profile.revenue == sum(o.total for o in mine)
