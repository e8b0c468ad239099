"""A catalog change through ingest and decide on the in-memory store: interests recorded before the profile, the
change fanned out page by page to the interested customers (each once, however often it is delivered), applied to
their profiles, and decided with every guardrail and the catalog read again."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from nextbest.core.campaigns import load_campaigns, trigger_delays
from nextbest.core.commands import DueProfile
from nextbest.core.events import (
    CHANNELS,
    CartUpdated,
    ConsentUpdated,
    CustomerErased,
    CustomerIdentified,
    LineItem,
    ProductUpdated,
    ProductViewed,
    WishlistItem,
    WishlistUpdated,
)
from nextbest.core.interest import INTEREST_SHARDS, FanOut, Noticed, ingest_command, interest_shard
from nextbest.decide.service import Decider
from nextbest.ingest import service
from nextbest.ingest.service import fan_out_page, ingest, notice_change, update_product
from nextbest.memory import MemoryStore

from tests.builders import POLICY, Alarms, Collect
from tests.conftest import T0

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "campaigns"
CAMPAIGNS = [
    c.model_copy(update={"status": "approved", "holdout_percent": 0.0})
    for c in load_campaigns(EXAMPLES)
    if c.id in ("back-in-stock", "price-drop")
]
DELAYS = trigger_delays(CAMPAIGNS)
SITE = "https://shop.example"


def product(at, availability="in_stock", price="40.00", event_id=None) -> ProductUpdated:
    return ProductUpdated(event_id=event_id or f"p-{at:%H%M}-{availability}", occurred_at=at, product_id="sku-1",
                          name="Hydrating serum", url=f"{SITE}/products/serum", image_url=f"{SITE}/images/serum.jpg",
                          price=Decimal(price), category="skincare", availability=availability)  # fmt: skip


def customer(store: MemoryStore, name: str, email: bool = True) -> None:
    identified = CustomerIdentified(event_id=f"i-{name}", occurred_at=T0, customer_id=name, email=f"{name}@example.org")
    ingest(store, "customer.identified", identified, DELAYS)
    consent = ConsentUpdated(event_id=f"k-{name}", occurred_at=T0, customer_id=name, channel="email", granted=email)
    ingest(store, "consent.updated", consent, DELAYS)


def view(store: MemoryStore, name: str, minutes: int = 5) -> None:
    viewed = ProductViewed(event_id=f"v-{name}-{minutes}", occurred_at=T0 + timedelta(minutes=minutes),
                           customer_id=name, product_id="sku-1")  # fmt: skip
    ingest(store, "product.viewed", viewed, DELAYS)


def cart(store: MemoryStore, name: str) -> None:
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("40.00"))
    cart = CartUpdated(event_id=f"c-{name}", occurred_at=T0 + timedelta(minutes=6), customer_id=name, items=[item])
    ingest(store, "cart.updated", cart, DELAYS)


def wish(store: MemoryStore, name: str, minutes: int, *product_ids: str) -> None:
    items = [WishlistItem(product_id=p) for p in product_ids]
    wishlist = WishlistUpdated(event_id=f"w-{name}-{minutes}", occurred_at=T0 + timedelta(minutes=minutes),
                               customer_id=name, items=items)  # fmt: skip
    ingest(store, "wishlist.updated", wishlist, DELAYS)


def deliver_all(store: MemoryStore, queue: Collect) -> dict[str, int]:
    """Run what ingest sent itself, as its queue would hand it back, until nothing is left: how many of each."""
    done = {"fan_out": 0, "noticed": 0, "applied": 0}
    while queue.sent:
        command = ingest_command.validate_python(queue.sent.pop(0))
        if isinstance(command, FanOut):
            done["fan_out"] += 1
            fan_out_page(store, queue, command)
        else:
            done["noticed"] += 1
            done["applied"] += notice_change(store, command, DELAYS).outcome == "applied"
    return done


def decide_everyone(store: MemoryStore, at) -> list:
    deliver = Collect()
    decider = Decider(store, dict.fromkeys(CHANNELS, deliver), Collect(), Alarms(), CAMPAIGNS, POLICY, SITE)
    decided = [d for key in sorted(store.profiles) for d in decider.due(DueProfile(profile_key=key), at)]
    return [d for d in decided if d.action == "send"]


def test_a_product_back_in_stock_reaches_each_interested_customer_once_with_the_product_in_the_message():
    # Given customers who looked at a serum while it was sold out, one who never did, one who opted out
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0, "out_of_stock"), DELAYS.watch, queue)
    for name in ("ann", "bob", "cy", "dee"):
        customer(store, name, email=name != "dee")
    for name in ("ann", "bob", "dee"):
        view(store, name)
    assert queue.sent == []  # selling out tells nobody
    # When it comes back in stock
    back = T0 + timedelta(hours=1)
    assert update_product(store, product(back), DELAYS.watch, queue).outcome == "applied"
    done = deliver_all(store, queue)
    # Then one command per shard, one event per interested customer, each applied to its profile
    assert (done["fan_out"], done["noticed"], done["applied"]) == (INTEREST_SHARDS, 3, 3)
    sends = decide_everyone(store, back + timedelta(minutes=2))
    assert sorted(store.decisions[d.decision_id].decision.profile_key for d in sends) == ["c:ann", "c:bob"]
    message = sends[0].messages["email"]
    assert message.subject == "Hydrating serum is back in stock"
    assert f"{SITE}/images/serum.jpg" in message.html and "40.00 USD" in message.html
    assert f"{SITE}/products/serum?utm_source=nextbest" in message.html
    assert sends[0].products == ["sku-1"]
    # And the same state sent again fans out again, but nobody is told twice
    assert update_product(store, product(back, event_id="again"), DELAYS.watch, queue).outcome == "duplicate"
    assert deliver_all(store, queue) == {"fan_out": INTEREST_SHARDS, "noticed": 3, "applied": 0}
    assert decide_everyone(store, back + timedelta(minutes=4)) == []


def test_a_product_back_in_stock_reaches_who_wishlisted_it_and_not_who_took_it_off_before_or_after_the_change():
    # Given a sold-out serum on three wishlists, taken off one of them before it comes back
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0, "out_of_stock"), DELAYS.watch, queue)
    for name in ("ann", "bob", "cy"):
        customer(store, name)
        wish(store, name, 5, "sku-1", "sku-9")
    wish(store, "bob", 10, "sku-9")
    # When it comes back in stock, and the third takes it off before decide answers
    back = T0 + timedelta(hours=1)
    update_product(store, product(back), DELAYS.watch, queue)
    assert deliver_all(store, queue) == {"fan_out": INTEREST_SHARDS, "noticed": 2, "applied": 2}  # not bob
    wish(store, "cy", 61, "sku-9")
    # Then only the one who still wishes for it hears of it, and the other decision says why not
    [send] = decide_everyone(store, back + timedelta(minutes=2))
    assert store.decisions[send.decision_id].decision.profile_key == "c:ann"
    assert send.messages["email"].subject == "Hydrating serum is back in stock" and send.products == ["sku-1"]
    [cy] = [d.decision for d in store.decisions.values() if d.decision.profile_key == "c:cy"]
    assert [c.reason for c in cy.candidates] == ["interest: taken off the wishlist"]


def test_a_product_out_of_stock_again_by_decide_time_is_never_sent():
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0, "out_of_stock"), DELAYS.watch, queue)
    customer(store, "ann")
    view(store, "ann")
    update_product(store, product(T0 + timedelta(hours=1)), DELAYS.watch, queue)
    deliver_all(store, queue)
    update_product(store, product(T0 + timedelta(hours=1, minutes=1), "out_of_stock"), DELAYS.watch, queue)
    assert decide_everyone(store, T0 + timedelta(hours=1, minutes=2)) == []
    [decision] = store.decisions.values()
    assert [c.reason for c in decision.decision.candidates] == ["product out of stock now"]


def test_a_price_drop_reaches_those_who_carted_it_if_deep_enough_and_not_if_the_price_is_back_up_by_decide_time():
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0), DELAYS.watch, queue)
    for name in ("ann", "bob"):
        customer(store, name)
    cart(store, "ann")
    view(store, "bob")  # viewers are recorded (back in stock answers them) but the price drop is for carts
    update_product(store, product(T0 + timedelta(hours=1), price="36.00"), DELAYS.watch, queue)  # 10%: below 15
    assert queue.sent == []
    dropped = T0 + timedelta(hours=2)
    update_product(store, product(dropped, price="30.00"), DELAYS.watch, queue)  # 16.6%: fanned out
    assert deliver_all(store, queue)["applied"] == 2
    [send] = decide_everyone(store, dropped + timedelta(minutes=32))  # the campaign waits 30 minutes
    assert store.decisions[send.decision_id].decision.profile_key == "c:ann"
    assert send.messages["email"].subject == "Hydrating serum is now 16% cheaper"
    assert "was 36.00 and is now 30.00 USD" in send.messages["email"].html
    bob = [d.decision for d in store.decisions.values() if d.decision.profile_key == "c:bob"]
    assert [c.reason for c in bob[0].candidates] == ["interest: viewed, never put in the cart"]
    # A second drop whose price is back up before the campaign's delay has passed sends nothing
    again = dropped + timedelta(hours=3)
    update_product(store, product(again, price="24.00"), DELAYS.watch, queue)
    deliver_all(store, queue)
    update_product(store, product(again + timedelta(minutes=10), price="36.00"), DELAYS.watch, queue)
    assert decide_everyone(store, again + timedelta(minutes=32)) == []
    [latest] = [d.decision for d in store.decisions.values()
                if d.decision.trigger_due_at > again and d.decision.profile_key == "c:ann"]  # fmt: skip
    assert [c.reason for c in latest.candidates] == ["price up again since the drop"]


def test_a_shard_larger_than_a_page_continues_in_the_next_message_and_everyone_is_reached_once(monkeypatch):
    monkeypatch.setattr(service, "FAN_OUT_PAGE", 2)
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0, "out_of_stock"), DELAYS.watch, queue)
    names = [f"cus_{n}" for n in range(40)]
    for name in names:
        customer(store, name)
        view(store, name)
    biggest = max(range(INTEREST_SHARDS), key=lambda s: sum(interest_shard(f"c:{n}") == s for n in names))
    assert sum(interest_shard(f"c:{n}") == biggest for n in names) > 2  # this shard needs several pages
    update_product(store, product(T0 + timedelta(hours=1)), DELAYS.watch, queue)
    reached: list[str] = []
    pages = 0
    while queue.sent:
        command = ingest_command.validate_python(queue.sent.pop(0))
        if isinstance(command, Noticed):
            reached.append(command.profile_key)
        else:
            pages += 1
            assert fan_out_page(store, queue, command) <= 2
    assert sorted(reached) == sorted(f"c:{n}" for n in names)
    assert pages > INTEREST_SHARDS


def test_the_index_entry_is_written_before_the_profile_so_a_failed_profile_write_loses_no_interest():
    class Failing(MemoryStore):
        fail = True

        def save(self, *args, **kwargs):
            if self.fail:
                self.fail = False
                raise RuntimeError("the write timed out")
            return super().save(*args, **kwargs)

    store = Failing()
    store.fail = False
    customer(store, "ann")
    store.fail = True
    with pytest.raises(RuntimeError):
        view(store, "ann")
    assert store.interested("sku-1", interest_shard("c:ann"), None, 10, T0).profile_keys == ["c:ann"]
    assert store.profiles["c:ann"].interests == {}
    view(store, "ann")  # the queue delivers the event again
    assert "sku-1" in store.profiles["c:ann"].interests


def test_erasure_deletes_the_customers_entries_in_the_interest_index():
    store = MemoryStore()
    customer(store, "ann")
    view(store, "ann")
    assert store.interested("sku-1", interest_shard("c:ann"), None, 10, T0).profile_keys == ["c:ann"]
    ingest(store, "customer.erased", CustomerErased(event_id="x", occurred_at=T0, customer_id="ann"), DELAYS)
    assert store.interested("sku-1", interest_shard("c:ann"), None, 10, T0).profile_keys == []


def test_a_change_for_a_profile_that_is_gone_is_ignored_and_creates_nothing():
    store, queue = MemoryStore(), Collect()
    update_product(store, product(T0, "out_of_stock"), DELAYS.watch, queue)
    update_product(store, product(T0 + timedelta(hours=1)), DELAYS.watch, queue)
    [first] = queue.sent[:1]
    change = FanOut.model_validate(first).fan_out
    assert notice_change(store, Noticed(noticed=change, profile_key="c:gone"), DELAYS).outcome == "not_interested"
    assert store.profiles == {}
