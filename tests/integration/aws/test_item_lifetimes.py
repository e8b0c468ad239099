"""Every item the production code writes to the table belongs to one of the item classes ``make bench`` reports on
(``nextbest_lab.item_classes``), every class is one the code writes, and the items of a class meant to expire carry
the table's TTL attribute. Whether every class expires or is bounded is issue 14's goal, reported by the bench
(``item_classes_without_expiry``) until the redesign makes it a hard assertion."""

import random
from datetime import timedelta
from decimal import Decimal

from nextbest.core.catalog import Product
from nextbest.core.events import CustomerIdentified, ProductViewed
from nextbest.core.profiles import TriggerDelays
from nextbest.core.triggers import Watch
from nextbest.decide.engine import limits
from nextbest.ingest.service import ingest
from nextbest.tally.service import FOLD_AFTER
from nextbest_lab.item_classes import classify_item, item_classes, lacks_declared_expiry

from tests.builders import CAMPAIGNS, DELAYS, abandoned_cart, table_store
from tests.conftest import T0


def test_every_item_the_store_writes_has_a_class_and_every_class_is_written(emulation):
    table = emulation.output("TableName")
    store = table_store(emulation)
    sent = abandoned_cart(store, {"email": True}, email="ann@example.org")  # profile, redirect, markers, counters
    for n, cookie in enumerate(("k1", "k2")):  # two cookies' profiles; the first then signs in: a redirect
        viewed = ProductViewed(event_id=f"v{n}", occurred_at=T0, anonymous_id=cookie, product_id="p")
        ingest(store, "product.viewed", viewed, DELAYS)
    signed_in = CustomerIdentified(event_id="sign-in", occurred_at=T0, customer_id="cus_1", anonymous_id="k1")
    ingest(store, "customer.identified", signed_in, DELAYS)
    busy = {"pk": {"S": "c:cus_1"}, "sk": {"S": "PROFILE"}}  # a profile with too many events this week: markers
    emulation.client("dynamodb").update_item(TableName=table, Key=busy, UpdateExpression="SET markers_until = :t",
                                             ExpressionAttributeValues={":t": {"N": "4102444800"}})  # fmt: skip
    store.forget()
    ingest(store, "product.viewed", ProductViewed(event_id="v9", occurred_at=T0, customer_id="cus_1", product_id="p"),
           DELAYS)  # fmt: skip
    capped = sent.model_copy(  # a campaign with an hourly cap and a budget takes from both
        update={"decision_id": "d-capped", "campaign_id": "at-risk", "variant": "we-miss-you", "offer_cost": Decimal(5)}
    )
    for limit in limits(capped, {c.id: c for c in CAMPAIGNS}):  # leased by decide
        store.lease(limit, limit.by)
    watching = TriggerDelays(
        {"catalog:back_in_stock+0m": timedelta(0)}, watch=Watch(interest="view", back_in_stock=True)
    )
    viewed = ProductViewed(event_id="v-sku-1", occurred_at=T0, customer_id="cus_2", product_id="sku-1")
    ingest(store, "product.viewed", viewed, watching)  # while a catalog campaign is approved: an interest entry
    store.remember_message("msg-1", sent.decision_id, "hash")  # a push's provider message id
    store.erase(["c:gone"], [])  # a tombstone
    store.put_product(Product(event_id="p1", occurred_at=T0, product_id="sku-1", name="Serum",
                              url="https://shop.example/p/1", price=Decimal(32)))  # fmt: skip
    store.put_product(Product(event_id="p2", occurred_at=T0, product_id="sku-2", availability="removed"))
    store.upload_coupons("cart-abandonment", ["SAVE-1", "SAVE-2"])  # a pool; one code claimed: its claim, its mark
    store.claim_coupon("cart-abandonment", "d-capped", T0)
    emulation.drain()  # the tally counts the decision: its counter item
    store.fold_closed(sent.campaign_id, emulation.clock.now() + FOLD_AFTER)  # days on: its daily counts apart

    items = emulation.client("dynamodb").scan(TableName=table)["Items"]
    assert {classify_item(i).name for i in items} == set(item_classes())
    assert [i["pk"]["S"] for i in items if lacks_declared_expiry(i)] == []


def test_a_status_change_on_a_decision_costs_one_write_unit_whatever_the_emails_size(emulation):
    """The rendered messages live in the decision's body item, written once: moving the status (and recording a
    fact) rewrites only the small record, which DynamoDB bills by its size, not the e-mail's."""
    store = table_store(emulation)
    sent = abandoned_cart(store, {"email": True}, email="ann@example.org")
    rng = random.Random(7)  # text that does not compress away
    html = "".join(f"<p>Line {i}: {rng.getrandbits(64):x} {rng.getrandbits(64):x}</p>" for i in range(1200))
    email = sent.messages["email"].model_copy(update={"html": html})
    big = sent.model_copy(update={"decision_id": "d-big", "messages": {"email": email}})
    assert len(html) > 40_000
    store.put_decision(big, "queued")
    emulation.metering.writes.clear()

    assert store.claim("d-big", "token")
    assert store.move_decision("d-big", "sending", "sent", sent_at="2026-12-01T10:00:00+00:00")
    assert store.annotate_decision("d-big", opened_at="2026-12-01T11:00:00+00:00")
    store.forget()
    profile = store.profile(sent.profile_key)  # with the profile, in a transaction: each item billed twice
    assert store.move_decision("d-big", "sent", "delivered", profile=profile, delivered_at="2026-12-01T10:01:00+00:00")

    units = [w.units + w.index_units for w in emulation.metering.writes if w.key[0] == "d:d-big"]
    assert len(units) == 4 and max(units) <= 2
    read = store.decision("d-big")
    assert read is not None and read.status == "delivered" and read.decision.messages["email"].html == html
