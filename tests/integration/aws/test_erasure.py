"""customer.erased: forgotten everywhere, and not learnt again from behaviour, only from new consent."""

import hashlib
import json
from datetime import timedelta

from nextbest.core.events import ConsentUpdated, CustomerErased, CustomerIdentified, ProductViewed
from nextbest.ingest.service import ingest

from tests.builders import DELAYS, abandoned_cart, table_store
from tests.conftest import T0


def test_given_an_erasure_then_profile_links_and_decisions_are_gone_and_do_not_come_back(emulation):
    store = table_store(emulation)
    decision = abandoned_cart(
        store, {"email": True}, customer="cus_9", email="zoe@example.org", phone="+14155550199", anonymous_id="ck-9"
    )
    assert store.decision(decision.decision_id) is not None

    result = ingest(
        store, "customer.erased", CustomerErased(event_id="x", occurred_at=T0, email="zoe@example.org"), DELAYS
    )
    assert result.outcome == "erased" and result.erased_keys == ["c:cus_9"]

    items = emulation.client("dynamodb").scan(TableName=emulation.output("TableName"))["Items"]
    text = json.dumps(items)
    for personal in ("cus_9", "zoe@example.org", "+14155550199", "ck-9", "Serum"):
        assert personal not in text  # nothing left that names or describes her
    assert [i["sk"]["S"] for i in items if i["pk"]["S"].startswith("d:")] == []  # the compressed body too
    assert store.decision(decision.decision_id) is None
    assert sum(1 for i in items if i["sk"]["S"] == "ERASED") == 4

    store.forget()
    later = ingest(
        store,
        "product.viewed",
        ProductViewed(event_id="v", occurred_at=T0, email="zoe@example.org", product_id="sku-1"),
        DELAYS,
    )
    assert later.outcome == "ignored_erased"
    assert store.profile("e:zoe@example.org") is None

    back = ingest(
        store,
        "consent.updated",
        ConsentUpdated(
            event_id="k2", occurred_at=T0 + timedelta(days=1), email="zoe@example.org", channel="email", granted=True
        ),
        DELAYS,
    )
    assert back.outcome == "applied"
    store.forget()
    returned = store.profile("e:zoe@example.org")
    assert returned is not None and returned.has_consent("email") and returned.cart is None


def test_given_more_cookies_than_a_profile_lists_then_erasure_still_finds_every_one(emulation):
    store = table_store(emulation)
    for n in range(25):  # a loyal customer on many devices: more cookies than the profile keeps a list of
        ingest(
            store,
            "customer.identified",
            CustomerIdentified(event_id=f"i{n}", occurred_at=T0, customer_id="cus_7", anonymous_id=f"cookie-{n:02d}"),
            DELAYS,
        )
    assert len(store.profile("c:cus_7").identifiers) < 26
    ingest(store, "customer.erased", CustomerErased(event_id="x", occurred_at=T0, customer_id="cus_7"), DELAYS)
    items = emulation.client("dynamodb").scan(TableName=emulation.output("TableName"))["Items"]
    assert "cookie-" not in json.dumps(items)
    assert sum(1 for i in items if i["sk"]["S"] == "ERASED") == 26


def test_an_unkeyed_tombstone_of_an_older_release_counts_until_migrated_to_the_keyed_form(emulation):
    """Tombstones written before the erasure key are unkeyed sha256: ingest reads both forms and writes only the
    keyed one; ``nextbest tombstones migrate`` rewrites the old ones keyed (from the hash alone) and deletes them."""
    store, table = table_store(emulation), emulation.output("TableName")
    dynamodb = emulation.client("dynamodb")
    unkeyed = "x:" + hashlib.sha256(b"e:old@example.org").hexdigest()
    dynamodb.put_item(
        TableName=table, Item={"pk": {"S": unkeyed}, "sk": {"S": "ERASED"}, "erased_at": {"S": "2026-06-01T00:00:00Z"}}
    )

    def view(n: int) -> ProductViewed:
        return ProductViewed(event_id=f"v{n}", occurred_at=T0, email="old@example.org", product_id="sku-1")

    assert ingest(store, "product.viewed", view(1), DELAYS).outcome == "ignored_erased"
    assert store.migrate_tombstones() == 1 and store.migrate_tombstones() == 0
    tombstones = [i for i in dynamodb.scan(TableName=table)["Items"] if i["sk"]["S"] == "ERASED"]
    assert [(i["pk"]["S"], i["erased_at"]["S"]) for i in tombstones] == [
        (store.tombstones("e:old@example.org")[0], "2026-06-01T00:00:00Z")
    ]
    store.forget()
    assert ingest(store, "product.viewed", view(2), DELAYS).outcome == "ignored_erased"
