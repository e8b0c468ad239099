"""Back in stock and price drop, the pure parts: which interests a profile records (and what that costs the index),
which catalog changes are worth telling, how a change reaches a profile, and the campaign syntax."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from nextbest.core.campaigns import CampaignError, CatalogTrigger, load_campaigns, trigger_delays
from nextbest.core.catalog import Product, State
from nextbest.core.events import CartUpdated, LineItem, OrderPlaced, ProductViewed, WishlistItem, WishlistUpdated
from nextbest.core.interest import (
    INTEREST_SHARDS,
    FanOut,
    Noticed,
    catalog_change,
    expiry,
    fan_out,
    index_writes,
    ingest_command,
    interest_shard,
    notice,
)
from nextbest.core.profiles import (
    INTEREST_REFRESH,
    INTEREST_TTL,
    MAX_INTERESTS,
    ProductInterest,
    Profile,
    TriggerDelays,
    apply,
    merge,
)
from nextbest.core.triggers import CatalogSpec, Watch
from pydantic import ValidationError

from tests.builders import example_edited
from tests.conftest import sample

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "campaigns"
BACK = "catalog:back_in_stock+0m"
VIEWS = TriggerDelays({BACK: timedelta(0)}, watch=Watch(interest="view", back_in_stock=True))
CARTS = TriggerDelays({BACK: timedelta(0)}, watch=Watch(interest="cart", back_in_stock=True))
WISHES = TriggerDelays({BACK: timedelta(0)}, watch=Watch(interest="wishlist", back_in_stock=True))


def viewed(product_id: str, at: datetime, n: int = 0) -> ProductViewed:
    return ProductViewed(event_id=f"v-{product_id}-{n}", occurred_at=at, customer_id="cus_1", product_id=product_id)


def carted(product_id: str, at: datetime) -> CartUpdated:
    item = LineItem(product_id=product_id, name="Serum", quantity=1, unit_price=Decimal("32.00"))
    return CartUpdated(event_id=f"c-{product_id}", occurred_at=at, customer_id="cus_1", items=[item])


def wished(at: datetime, *product_ids: str) -> WishlistUpdated:
    items = [WishlistItem(product_id=p, category="skincare") for p in product_ids]
    return WishlistUpdated(event_id=f"w-{at:%d%H%M}", occurred_at=at, customer_id="cus_1", items=items)


def product(availability: str = "in_stock", price: str = "40.00", at: datetime = T0, **fields) -> Product:
    return Product.model_validate(
        {"event_id": "p", "occurred_at": at, "product_id": "sku-1", "name": "Serum", "url": "https://s/p/1",
         "price": price, "category": "skincare", "availability": availability} | fields
    )  # fmt: skip


def state(availability: str = "in_stock", price: str | None = "40.00", currency: str = "USD") -> State:
    return State(availability=availability, price=Decimal(price) if price else None, currency=currency)


# --- which interests are recorded ----------------------------------------------------------------------------------


def test_no_interest_is_recorded_while_no_catalog_campaign_is_approved():
    profile = apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), TriggerDelays())
    profile = apply(profile, "cart.updated", carted("sku-2", T0), {"cart_abandoned": timedelta(hours=1)})
    assert profile.interests == {} and not index_writes(Profile(key="c:cus_1"), profile, T0)


def test_views_count_only_when_a_campaign_answers_viewers_and_a_cart_counts_always():
    profile = apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), CARTS)
    assert profile.interests == {}
    profile = apply(profile, "cart.updated", carted("sku-2", T0), CARTS)
    assert profile.interests == {"sku-2": ProductInterest(kind="cart", at=T0.date())}
    assert apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), VIEWS).interests == {
        "sku-1": ProductInterest(kind="view", at=T0.date())
    }


def test_a_new_interest_is_one_index_entry_and_the_same_interest_shown_again_within_a_week_costs_nothing():
    before = Profile(key="c:cus_1")
    first = apply(before, "product.viewed", viewed("sku-1", T0), VIEWS)
    [entry] = index_writes(before, first, T0).put
    assert (entry.product_id, entry.profile_key) == ("sku-1", "c:cus_1")
    assert entry.expires_at == datetime(2026, 11, 3, tzinfo=UTC) + INTEREST_TTL
    assert entry.shard == interest_shard("c:cus_1") < INTEREST_SHARDS
    again = apply(first, "product.viewed", viewed("sku-1", T0 + INTEREST_REFRESH - timedelta(days=1), 1), VIEWS)
    assert again.interests == first.interests and not index_writes(first, again, T0)
    later = apply(first, "product.viewed", viewed("sku-1", T0 + INTEREST_REFRESH, 2), VIEWS)
    [renewed] = index_writes(first, later, T0).put  # shown again a week on: its entry lives longer
    assert renewed.expires_at == entry.expires_at + INTEREST_REFRESH


def test_putting_a_viewed_product_in_the_cart_makes_the_interest_stronger_at_once():
    first = apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), VIEWS)
    stronger = apply(first, "cart.updated", carted("sku-1", T0 + timedelta(hours=1)), VIEWS)
    assert stronger.interests["sku-1"].kind == "cart"
    assert [e.product_id for e in index_writes(first, stronger, T0).put] == ["sku-1"]
    viewed_again = apply(stronger, "product.viewed", viewed("sku-1", T0 + timedelta(hours=2), 1), VIEWS)
    assert viewed_again.interests == stronger.interests  # a view never weakens it


def test_an_order_of_the_product_ends_the_interest_and_deletes_its_entry():
    interested = apply(Profile(key="c:cus_1"), "cart.updated", carted("sku-1", T0), VIEWS)
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    order = OrderPlaced(event_id="o", occurred_at=T0 + timedelta(hours=1), customer_id="cus_1", order_id="o-1",
                        items=[item], total=Decimal("32.00"))  # fmt: skip
    bought = apply(interested, "order.placed", order, VIEWS)
    assert bought.interests == {}
    assert index_writes(interested, bought, T0).delete == [("sku-1", "c:cus_1")]


def test_a_profile_keeps_its_most_recent_interests_and_deletes_the_entry_of_one_pushed_out():
    profile = Profile(key="c:cus_1")
    for n in range(MAX_INTERESTS):
        profile = apply(profile, "product.viewed", viewed(f"sku-{n:03}", T0 + timedelta(minutes=n)), VIEWS)
    newest = apply(profile, "product.viewed", viewed("sku-new", T0 + timedelta(days=1)), VIEWS)
    assert len(newest.interests) == MAX_INTERESTS and "sku-new" in newest.interests
    writes = index_writes(profile, newest, T0)
    assert [e.product_id for e in writes.put] == ["sku-new"] and len(writes.delete) == 1
    assert writes.delete[0][0] not in newest.interests


def test_a_lapsed_interest_is_forgotten_without_a_delete_its_entry_has_expired():
    old = apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), VIEWS)
    much_later = T0 + INTEREST_TTL + timedelta(days=2)
    later = apply(old, "product.viewed", viewed("sku-2", much_later), VIEWS)
    assert set(later.interests) == {"sku-2"}
    assert index_writes(old, later, much_later).delete == []


def test_merging_two_profiles_interests_is_symmetric_and_keeps_the_stronger_and_later():
    a = Profile(key="c:cus_1", interests={"sku-1": ProductInterest(kind="view", at=T0.date()),
                                          "sku-2": ProductInterest(kind="cart", at=T0.date())})  # fmt: skip
    b = Profile(key="a:cookie", interests={"sku-1": ProductInterest(kind="cart", at=(T0 + timedelta(days=3)).date()),
                                           "sku-3": ProductInterest(at=T0.date())})  # fmt: skip
    merged = merge(a, b, VIEWS)
    assert merged.interests == merge(b, a, VIEWS).interests
    assert merged.interests["sku-1"] == ProductInterest(kind="cart", at=(T0 + timedelta(days=3)).date())
    assert set(merged.interests) == {"sku-1", "sku-2", "sku-3"}


def test_the_profile_keeps_the_newest_wishlist_whatever_order_its_events_arrive_in():
    first, second = wished(T0, "sku-1", "sku-2", "sku-1"), wished(T0 + timedelta(hours=1), "sku-2")
    in_order = apply(
        apply(Profile(key="c:cus_1"), "wishlist.updated", first, WISHES), "wishlist.updated", second, WISHES
    )
    late = apply(apply(Profile(key="c:cus_1"), "wishlist.updated", second, WISHES), "wishlist.updated", first, WISHES)
    assert in_order.wishlist == late.wishlist and in_order.wishlist is not None
    assert (in_order.wishlist.items, in_order.wishlist.updated_at) == (["sku-2"], second.occurred_at)
    assert set(in_order.interests) == set(late.interests) == {"sku-2"}
    assert apply(Profile(key="c:cus_1"), "wishlist.updated", first, WISHES).wishlist.items == ["sku-1", "sku-2"]
    assert in_order.products["sku-2"] == in_order.products["sku-1"]  # liked when added, not at every list after


def test_a_wishlist_counts_when_a_campaign_answers_wishlists_or_viewers_and_is_stronger_than_a_view():
    assert apply(Profile(key="c:cus_1"), "wishlist.updated", wished(T0, "sku-1"), CARTS).interests == {}
    for delays in (WISHES, VIEWS):
        profile = apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), delays)
        listed = apply(profile, "wishlist.updated", wished(T0 + timedelta(hours=1), "sku-1"), delays)
        assert listed.interests == {"sku-1": ProductInterest(kind="wishlist", at=T0.date())}
        carted_too = apply(listed, "cart.updated", carted("sku-1", T0 + timedelta(hours=2)), delays)
        assert carted_too.interests["sku-1"].kind == "cart"
    assert apply(Profile(key="c:cus_1"), "product.viewed", viewed("sku-1", T0), WISHES).interests == {}
    assert Watch(interest="cart").wider(Watch(interest="wishlist")).interest == "wishlist"
    assert Watch(interest="view").wider(Watch(interest="wishlist")).interest == "view"


def test_a_product_taken_off_the_wishlist_is_no_longer_an_interest_unless_it_was_put_in_the_cart():
    listed = apply(Profile(key="c:cus_1"), "wishlist.updated", wished(T0, "sku-1", "sku-2"), VIEWS)
    listed = apply(listed, "cart.updated", carted("sku-2", T0 + timedelta(minutes=5)), VIEWS)
    removed = apply(listed, "wishlist.updated", wished(T0 + timedelta(hours=1)), VIEWS)
    assert removed.wishlist is not None and removed.wishlist.items == []
    assert removed.interests == {"sku-2": ProductInterest(kind="cart", at=T0.date())}
    assert index_writes(listed, removed, T0).delete == [("sku-1", "c:cus_1")]  # its entry goes with it
    wished_again = apply(removed, "wishlist.updated", wished(T0 + timedelta(hours=2), "sku-1"), VIEWS)
    assert [e.product_id for e in index_writes(removed, wished_again, T0).put] == ["sku-1"]


def test_merged_profiles_keep_the_newer_wishlist_either_way():
    a = apply(Profile(key="c:cus_1"), "wishlist.updated", wished(T0, "sku-1"), WISHES)
    b = apply(Profile(key="a:cookie"), "wishlist.updated", wished(T0 + timedelta(hours=1), "sku-2"), WISHES)
    assert merge(a, b, WISHES).wishlist == merge(b, a, WISHES).wishlist == b.wishlist


# --- which changes are worth telling ---------------------------------------------------------------------------------


WATCH_ALL = Watch(interest="view", back_in_stock=True, min_drop_percent=Decimal(10))


def test_back_in_stock_is_out_of_stock_then_in_stock_and_carries_its_price_change():
    change = catalog_change(state("out_of_stock", "40.00"), product(price="30.00"), WATCH_ALL)
    assert change is not None and change.kind == "back_in_stock"
    assert change.properties("view") == {
        "product_id": "sku-1", "category": "skincare", "currency": "USD", "old_price": 40.0, "new_price": 30.0,
        "drop_percent": 25.0, "interest": "view",
    }  # fmt: skip
    assert catalog_change(state("out_of_stock"), product(), Watch(min_drop_percent=Decimal(10))) is None


@pytest.mark.parametrize(
    ("previous", "new_price", "least", "found"),
    [
        (state("in_stock", "40.00"), "36.00", Decimal(10), "price_drop"),  # exactly 10%
        (state("in_stock", "40.00"), "36.01", Decimal(10), None),  # 9.975%: 9.9 (rounded down, never up to 10)
        (state("in_stock", "40.00"), "20.00", None, None),  # no campaign answers price drops
        (state("in_stock", "40.00"), "44.00", Decimal(5), None),  # dearer
        (state("in_stock", "40.00", "EUR"), "20.00", Decimal(5), None),  # another currency: no comparison
        (None, "20.00", Decimal(5), None),  # the product's first state
        (state("removed", None), "20.00", Decimal(5), None),
    ],
)
def test_a_price_drop_is_in_stock_both_times_in_one_currency_by_at_least_the_smallest_drop_answered(
    previous, new_price, least, found
):
    watch = Watch(interest="cart", min_drop_percent=least)
    change = catalog_change(previous, product(price=new_price), watch)
    assert (change.kind if change else None) == found


def test_a_product_sold_out_or_removed_changes_nothing_anybody_is_told():
    assert catalog_change(state("in_stock"), product("out_of_stock"), WATCH_ALL) is None
    removed = Product(event_id="p", occurred_at=T0, product_id="sku-1", availability="removed")
    assert catalog_change(state("in_stock"), removed, WATCH_ALL) is None


# --- how a change reaches a profile ----------------------------------------------------------------------------------


def interested_profile(kind: str = "view", at: datetime = T0) -> Profile:
    return Profile(key="c:cus_1", interests={"sku-1": ProductInterest(kind=kind, at=at.date())})


def test_a_change_reaches_an_interested_profile_as_an_occurrence_and_arms_its_trigger():
    change = catalog_change(state("out_of_stock"), product(at=T0 + timedelta(days=2)), WATCH_ALL)
    assert change is not None
    command = Noticed(noticed=change, profile_key="c:cus_1")
    delays = TriggerDelays({"catalog:back_in_stock+30m": timedelta(minutes=30)}, watch=WATCH_ALL)
    updated = notice(interested_profile("cart"), command, delays)
    assert updated is not None
    occurrence = updated.occurrences["catalog:back_in_stock"]
    assert occurrence.event_id == command.event_id and occurrence.at == change.at
    assert occurrence.properties["interest"] == "cart" and occurrence.properties["product_id"] == "sku-1"
    assert updated.triggers == {"catalog:back_in_stock+30m": change.at + timedelta(minutes=30)}


def test_a_change_does_not_reach_a_profile_no_longer_interested_or_no_campaign_answers():
    change = catalog_change(state("out_of_stock"), product(at=T0 + timedelta(days=2)), WATCH_ALL)
    assert change is not None
    command = Noticed(noticed=change, profile_key="c:cus_1")
    assert notice(Profile(key="c:cus_1"), command, VIEWS) is None  # not (or no longer: bought) interested
    lapsed = interested_profile(at=T0 - INTEREST_TTL)
    assert change.at >= expiry(lapsed.interests["sku-1"]) and notice(lapsed, command, VIEWS) is None
    only_drops = TriggerDelays({"catalog:price_drop+0m": timedelta(0)}, watch=WATCH_ALL)
    assert notice(interested_profile(), command, only_drops) is None


def test_each_profile_key_gets_its_own_event_id_and_the_same_change_the_same_one_whatever_event_carried_it():
    change = catalog_change(state("out_of_stock"), product(), WATCH_ALL)
    again = catalog_change(state("out_of_stock"), product(event_id="another-delivery"), WATCH_ALL)
    later = catalog_change(state("out_of_stock"), product(at=T0 + timedelta(hours=1)), WATCH_ALL)
    assert change is not None and again is not None and later is not None
    assert change.event_id("c:cus_1") == again.event_id("c:cus_1")
    assert len({change.event_id("c:cus_1"), change.event_id("c:cus_2"), later.event_id("c:cus_1")}) == 3


def test_a_fan_out_starts_with_one_command_per_shard_and_commands_are_told_from_the_shops_events():
    change = catalog_change(state("out_of_stock"), product(), WATCH_ALL)
    assert change is not None
    commands = fan_out(change)
    assert [c.shard for c in commands] == list(range(INTEREST_SHARDS))
    assert ingest_command.validate_json(commands[3].model_dump_json()) == commands[3]
    noticed = Noticed(noticed=change, profile_key="c:cus_1")
    assert ingest_command.validate_json(noticed.model_dump_json()) == noticed
    with pytest.raises(ValidationError):  # the bus's envelope (a product event among them) is not a command
        ingest_command.validate_json(json.dumps(sample("product.updated.json")))
    with pytest.raises(ValidationError):
        FanOut(fan_out=change, shard=INTEREST_SHARDS)


# --- campaigns -------------------------------------------------------------------------------------------------------


def test_approved_catalog_campaigns_arm_their_triggers_and_tell_ingest_the_widest_of_their_needs():
    campaigns = {c.id: c.model_copy(update={"status": "approved"}) for c in load_campaigns(EXAMPLES)}
    both = trigger_delays([campaigns["back-in-stock"], campaigns["price-drop"]])
    assert dict(both) == {BACK: timedelta(0), "catalog:price_drop+30m": timedelta(minutes=30)}
    assert both.watch == Watch(interest="view", back_in_stock=True, min_drop_percent=Decimal(15))
    drops = trigger_delays([campaigns["price-drop"]])
    assert drops.watch == Watch(interest="cart", back_in_stock=False, min_drop_percent=Decimal(15))
    assert trigger_delays(load_campaigns(EXAMPLES)).watch == Watch()  # drafts: nothing recorded, nothing watched


def test_a_price_drop_campaign_answers_10_percent_unless_it_says_otherwise_and_a_back_in_stock_one_no_drop():
    assert CatalogTrigger(catalog="price_drop").drop_percent == Decimal(10)
    assert CatalogTrigger(catalog="back_in_stock").drop_percent is None
    assert CatalogSpec.parse(CatalogTrigger(catalog="price_drop", delay="2h").key) == CatalogSpec(
        "price_drop", timedelta(hours=2)
    )


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('catalog = "price_drop"', 'catalog = "sold_out"', r"trigger\.catalog"),
        ('catalog = "price_drop"', 'catalog = "back_in_stock"', r"trigger:.*min_drop_percent is for"),
        ("min_drop_percent = 15", "min_drop_percent = 95", r"trigger\.min_drop_percent"),
        ('interest = "cart"', 'interest = "favourites"', r"trigger\.interest"),
        ('{ property = "new_price", gte = 20 }', '{ property = "plan", equals = "a" }', r"trigger:.*no property plan"),
        ('delay = "30m"', 'delay = "half an hour"', r"trigger\.delay"),
        ("[trigger]", "[follow_up]\nafter_hours = 48\n\n[trigger]", r"<file>:.*no follow_up"),
    ],
)
def test_a_broken_catalog_trigger_names_the_file_and_the_field(tmp_path, old, new, field):
    with pytest.raises(CampaignError, match=rf"price-drop\.toml: .*{field}"):
        load_campaigns(example_edited(tmp_path, "price-drop.toml", old, new))


def test_an_approval_covers_the_interest_and_the_smallest_drop(tmp_path_factory):
    def edited(folder: str, old: str, new: str):
        return load_campaigns(example_edited(tmp_path_factory.mktemp(folder), "price-drop.toml", old, new))

    [cart] = edited("a", "min_drop_percent = 15", "min_drop_percent = 15")
    [deeper] = edited("b", "min_drop_percent = 15", "min_drop_percent = 20")
    [viewers] = edited("c", 'interest = "cart"', 'interest = "view"')
    assert len({cart.digest(), deeper.digest(), viewers.digest()}) == 3


def test_a_catalog_campaign_checks_the_interest_the_drop_and_its_conditions_against_the_change():
    trigger = CatalogTrigger.model_validate(
        {"catalog": "price_drop", "interest": "cart", "min_drop_percent": 15,
         "where": [{"property": "category", "equals": "skincare"}]}
    )  # fmt: skip
    change = {"product_id": "sku-1", "category": "skincare", "drop_percent": 20.0, "interest": "cart"}
    assert trigger.unmet(change) is None
    assert trigger.unmet(change | {"interest": "view"}) == "interest: viewed, never put in the cart"
    assert trigger.unmet(change | {"interest": "wishlist"}) == "interest: wishlisted, never put in the cart"
    wishes = trigger.model_copy(update={"interest": "wishlist"})
    assert wishes.unmet(change) is None and wishes.unmet(change | {"interest": "wishlist"}) is None
    assert wishes.unmet(change | {"interest": "view"}) == "interest: viewed, never wishlisted or put in the cart"
    assert trigger.model_copy(update={"interest": "view"}).unmet(change | {"interest": "view"}) is None
    assert trigger.unmet(change | {"drop_percent": 12.5}) == "price drop below 15%"
    assert trigger.unmet(change | {"category": "hair"}) == 'where: category is not "skincare"'
