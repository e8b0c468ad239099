"""Every item the production code writes to the table belongs to one of the item classes ``make bench`` reports on
(``nextbest_lab.item_classes``), every class is one the code writes, and the items of a class meant to expire carry
the table's TTL attribute. Whether every class expires or is bounded is issue 14's goal, reported by the bench
(``item_classes_without_expiry``) until the redesign makes it a hard assertion."""

from decimal import Decimal

from nextbest.core.events import ProductViewed
from nextbest.decide.engine import counters
from nextbest.ingest.service import ingest
from nextbest_lab.item_classes import classify_item, item_classes, lacks_declared_expiry

from tests.builders import CAMPAIGNS, DELAYS, abandoned_cart, table_store
from tests.conftest import T0


def test_every_item_the_store_writes_has_a_class_and_every_class_is_written(emulation):
    table = emulation.output("TableName")
    store = table_store(emulation)
    sent = abandoned_cart(store, {"email": True}, email="ann@example.org")  # profile, redirect, markers, counters
    ingest(store, "product.viewed", ProductViewed(event_id="v", occurred_at=T0, anonymous_id="k1", product_id="p"),
           DELAYS)  # fmt: skip
    capped = sent.model_copy(  # a campaign with an hourly cap and a budget takes from both
        update={"decision_id": "d-capped", "campaign_id": "at-risk", "variant": "we-miss-you", "offer_cost": Decimal(5)}
    )
    store.commit_decision(capped, "queued", None, counters(capped, {c.id: c for c in CAMPAIGNS}))
    store.remember_message("msg-1", sent.decision_id, "hash")  # a push's provider message id
    store.erase(["c:gone"], [])  # a tombstone

    items = emulation.client("dynamodb").scan(TableName=table)["Items"]
    assert {classify_item(i).name for i in items} == set(item_classes())
    assert [i["pk"]["S"] for i in items if lacks_declared_expiry(i)] == []
