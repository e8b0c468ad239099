"""The table's item classes (``nextbest_lab.item_classes``): each item the store writes falls in exactly one class,
with a lifetime. Issue 14 asks that every class expire or be bounded; today some do not, which ``make bench``
reports as ``item_classes_without_expiry`` (when the redesign lands, the last test here becomes ``== []``)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.aws.store.catalog import product_item
from nextbest.aws.store.counters import TALLY
from nextbest.aws.store.table import profile_item, redirect_item, tombstone
from nextbest.core.catalog import REMOVED_RETENTION, Product
from nextbest.core.counters import Counter
from nextbest.core.profiles import Profile
from nextbest_lab.item_classes import (
    ITEM_CLASSES,
    UnknownItem,
    classify,
    classify_item,
    item_classes,
    lacks_declared_expiry,
    without_expiry,
)

from tests.conftest import T0


def test_a_profile_an_anonymous_profile_and_a_redirect_are_told_apart():
    assert classify_item(profile_item(Profile(key="c:cus_42"))).name == "profile"
    assert classify_item(profile_item(Profile(key="e:ann@example.org"))).name == "profile"
    assert classify_item(profile_item(Profile(key="a:cookie-1"))).name == "anonymous_profile"
    assert classify_item(redirect_item("e:ann@example.org", "c:cus_42")).name == "redirect"


@pytest.mark.parametrize(
    ("pk", "sk", "name"),
    [
        ("d:0b0e", "DECISION", "decision"),
        ("d:0b0e", "BODY", "decision_body"),
        (tombstone("e:ann@example.org", b"secret"), "ERASED", "tombstone"),
        ("m:msg-1", "MESSAGE", "push_message"),
        ("s:cart", "TALLY#shardId-00000001541626099285-f35f62ef", "counter_tally"),
        ("s:cart", "TALLY#TOTAL", "counter_tally"),
        ("s:cart", "BUDGET", "counter_budget"),
        ("s:cart", "HOUR#2026-11-02T09", "counter_hour"),
        ("s:cart", "DAY#2026-11-02", "counter_day"),
        ("cp:cart#3", "CODE#SAVE-1", "coupon_code"),
        ("d:0b0e", "COUPON", "coupon_claim"),
        ("cu:cart#SAVE-1", "USED", "coupon_used"),
    ],
)
def test_each_key_of_the_schema_has_its_class(pk, sk, name):
    assert classify(pk, sk).name == name


def test_a_product_and_a_removed_product_are_told_apart_and_only_the_removed_one_expires():
    sold = Product(event_id="e1", occurred_at=T0, product_id="sku-1", name="Serum", url="https://s/p/1", price=1)
    removed = Product(event_id="e2", occurred_at=T0, product_id="sku-1", availability="removed")
    assert classify_item(product_item(sold)).name == "product"
    assert classify_item(product_item(removed)).name == "removed_product"
    assert not lacks_declared_expiry(product_item(removed))
    assert int(product_item(removed)["expires_at"]["N"]) == int((T0 + REMOVED_RETENTION).timestamp())


def test_an_entry_of_the_interest_index_is_its_own_class_and_is_written_with_its_expiry():
    from nextbest.aws.store.interests import interest_item
    from nextbest.core.interest import IndexEntry

    item = interest_item(IndexEntry("sku-1", "c:cus_42", T0 + timedelta(days=30)))
    assert classify_item(item).name == "interest" and not classify_item(item).shared
    assert classify_item(interest_item(IndexEntry("sku-1", "e:ann@example.org", T0))).name == "interest"
    assert not lacks_declared_expiry(item) and int(item["expires_at"]["N"]) == int(
        (T0 + timedelta(days=30)).timestamp()
    )


def test_the_counter_items_the_tally_writes_are_classified_as_shared():
    found = classify("s:cart", TALLY + "shardId-1")
    assert found.name == "counter_tally" and found.shared


def test_an_item_the_schema_does_not_name_is_refused():
    with pytest.raises(UnknownItem):
        classify("q:new", "SOMETHING")
    with pytest.raises(UnknownItem):
        classify("s:cart", "NEWCOUNTER#1")
    with pytest.raises(UnknownItem):
        classify("s:cart", "FUNNEL#reminder#email")  # the steps no longer write counters: the tally does


def test_only_counters_are_shared_and_every_class_says_why_it_lives_as_long_as_it_does():
    assert {c.name for c in ITEM_CLASSES if c.shared} == {c.name for c in ITEM_CLASSES if c.name.startswith("counter")}
    assert all(c.lifetime in ("expiry", "bound", "none") and c.why for c in ITEM_CLASSES)
    assert len(item_classes()) == len(ITEM_CLASSES)  # names are unique


def test_an_item_of_an_expiring_class_without_its_ttl_attribute_is_caught():
    marker = {"pk": {"S": "m:1"}, "sk": {"S": "MESSAGE"}, "expires_at": {"N": "1"}}
    assert not lacks_declared_expiry(marker)
    assert lacks_declared_expiry({"pk": {"S": "m:1"}, "sk": {"S": "MESSAGE"}})
    assert not lacks_declared_expiry(profile_item(Profile(key="c:1")))  # bounded, not expiring


def test_the_hourly_cap_counter_is_written_with_its_expiry():
    hour = Counter("s:cart", "HOUR#2026-11-02T09", Decimal(1), Decimal(10), expires_at=T0 + timedelta(days=2))
    assert classify("s:cart", hour.sk).lifetime == "expiry"
    assert "expires_at" in hour.update("t")["Update"]["UpdateExpression"]


def test_every_class_expires_or_is_bounded():
    """Issue 14: every class carries an expiry or a bound (the bench reports ``item_classes_without_expiry``)."""
    assert without_expiry() == []


def test_the_redirects_of_cookies_and_device_tokens_expire_and_those_of_contact_details_do_not():
    assert classify_item(redirect_item("a:ck", "c:1")).name == "ephemeral_redirect"
    assert classify_item(redirect_item("t:tok", "c:1")).name == "ephemeral_redirect"
    assert not lacks_declared_expiry(redirect_item("t:tok", "c:1"))
    assert "expires_at" not in redirect_item("e:ann@example.org", "c:1")
    assert classify_item(redirect_item("e:ann@example.org", "c:1")).name == "redirect"
