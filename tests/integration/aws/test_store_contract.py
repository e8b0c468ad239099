"""One contract, two stores: the DynamoDB store on the real table definition (moto) and the in-memory store
the unit tests and the lab's experiment use must answer every port the same way. If the memory store drifts
from the table's guarantees, this fails, not a figure in the lab."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from nextbest.core import clock
from nextbest.core.counters import Counter
from nextbest.core.decision import Decision
from nextbest.core.due import DUE_SHARDS, due_shard
from nextbest.core.ports import Conflict, DecisionExists, Duplicate
from nextbest.core.profiles import Consent, Order, Profile
from nextbest.memory import MemoryStore

from tests.builders import table_store
from tests.conftest import T0


@pytest.fixture(params=["dynamodb", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryStore()
    emulation = request.getfixturevalue("emulation")
    return table_store(emulation)


@pytest.fixture
def settle(request, store):
    """Let the tally count what the table's stream carries (the memory store counts at once)."""
    if isinstance(store, MemoryStore):
        return lambda: None
    return request.getfixturevalue("emulation").drain


def new(store, key: str, *others: str, orders: int = 0) -> Profile:
    profile = Profile(key=key, identifiers=[key, *others])
    for n in range(orders):
        profile.orders.append(Order(order_id=f"{key}-{n}", at=T0, total=Decimal("10")))
    profile.order_count = orders
    return store.save(profile, previous=[], new_keys=[key, *others])


def decision(key: str, n: int = 0) -> Decision:
    return Decision(
        decision_id=f"d-{key}-{n}", profile_key=key, trigger="cart_abandoned", trigger_due_at=T0,
        decided_at=T0 + timedelta(minutes=n), action="send", campaign_id="cart", channel="email", variant="a",
    )  # fmt: skip


def test_every_identifier_resolves_to_its_profile_and_a_merge_repoints_them(store):
    ann = new(store, "c:ann", "e:ann@example.org")
    anon = new(store, "a:cookie")
    merged = ann.model_copy(update={"identifiers": [*ann.identifiers, "a:cookie"]})
    store.save(merged, previous=[ann, anon], new_keys=[])
    found = store.resolve(["e:ann@example.org", "a:cookie", "c:ann", "p:+15550000"])
    assert found["a:cookie"].key == found["e:ann@example.org"].key == "c:ann"
    assert found["p:+15550000"] is None
    assert store.linked_to(["c:ann"]) == {"c:ann", "e:ann@example.org", "a:cookie"}


def test_a_stale_version_conflicts_and_an_applied_event_is_a_duplicate(store):
    ann = new(store, "c:ann")
    store.save(ann, previous=[ann], new_keys=[], event_ids=["ev-1"])
    with pytest.raises(Conflict):
        store.update_profile(ann)  # read before the save above
    current = store.profile("c:ann")
    with pytest.raises(Duplicate):
        store.save(current, previous=[current], new_keys=[], event_ids=["ev-1"])
    assert store.change("c:ann", lambda p: p.model_copy(update={"first_name": "Ann"})).first_name == "Ann"
    assert store.change("c:nobody", lambda p: p) is None


def test_a_decision_is_committed_once_with_its_profile_and_counted_once(store, settle):
    ann = new(store, "c:ann")
    store.commit_decision(decision("c:ann"), "queued", ann)
    with pytest.raises(DecisionExists):
        store.commit_decision(decision("c:ann"), "queued", None)
    with pytest.raises(Conflict):
        store.commit_decision(decision("c:ann", 2), "queued", ann)  # its version moved with the first commit
    assert store.decision(decision("c:ann", 2).decision_id) is None
    settle()
    assert store.arm_counts("cart", ["a", "b"]) == {"a": (1, 0), "b": (0, 0)}
    assert store.decision(decision("c:ann").decision_id).decision == decision("c:ann")


def test_a_lease_grants_what_it_asks_while_there_is_room_then_what_is_left_then_nothing(store):
    budget = Counter("s:cart", "BUDGET", Decimal("2.5"), Decimal(10), refusal="budget spent")
    assert store.lease(budget, Decimal(6)) == Decimal(6)
    assert store.lease(budget, Decimal(6)) == Decimal(4)
    assert store.lease(budget, Decimal("0.5")) == Decimal(0)
    hour = Counter("s:cart", "HOUR#2026-11-02T09", Decimal(1), Decimal(3), expires_at=T0 + timedelta(days=2))
    assert store.lease(hour, Decimal(1)) == Decimal(1)


def test_status_moves_by_compare_and_set_and_a_fact_is_annotated_and_counted_once(store, settle):
    new(store, "c:ann")
    assert store.put_decision(decision("c:ann"), "queued")
    assert not store.put_decision(decision("c:ann"), "queued")
    did = decision("c:ann").decision_id
    assert store.move_decision(did, "queued", "sending")
    assert not store.move_decision(did, "queued", "sending")
    assert store.move_decision(did, ("sending", "queued"), "sent", message_id="m-1")
    assert store.annotate_decision(did, opened_at="t1")
    assert not store.annotate_decision(did, opened_at="t2")
    assert store.decision(did).status == "sent"
    assert store.decisions_of("c:ann") == [did]
    store.remember_message("m-1", did, "hash")
    assert store.message("m-1").decision_id == did and store.message("m-2") is None
    settle()
    assert store.counts("cart")["FUNNEL#a#email"] == {"decided": 1, "sent": 1, "opened": 1}


def test_erasure_deletes_the_profile_and_leaves_a_tombstone_until_lifted(store):
    new(store, "c:b00", orders=1)
    new(store, "c:b01", orders=1)
    store.erase(["c:b00"], [])
    assert store.profile("c:b00") is None and list(store.erased(["c:b00", "c:b01"])) == ["c:b00"]
    store.lift_tombstones(["c:b00"])
    assert store.erased(["c:b00"]) == {}


def test_the_due_index_holds_each_profile_with_pending_triggers_at_its_earliest_time_and_nothing_else(store):
    clock.install(clock.ManualClock(T0))  # each write's index time is stamped with the clock (the emulation's too)
    try:
        soon, later = T0 + timedelta(minutes=30), T0 + timedelta(hours=2)
        mailable = {"email": "cart@example.org", "consent": {"email": Consent(granted=True, at=T0, source="test")}}
        cart = new(store, "c:cart", "e:cart@example.org")
        triggers = {"cart_abandoned": later, "browse_abandoned": soon}
        store.update_profile(cart.model_copy(update={"triggers": triggers} | mailable))
        new(store, "c:idle")
        gone = new(store, "c:gone")
        store.update_profile(gone.model_copy(update={"triggers": {"cart_abandoned": soon}} | mailable))
        silent = new(store, "c:silent")  # triggers, but no channel may reach them
        store.update_profile(silent.model_copy(update={"triggers": {"cart_abandoned": soon}}))
        store.erase(["c:gone"], [])

        def due(after, until):
            return [key for shard in range(DUE_SHARDS) for key in store.due(shard, after, until)]

        # once, at its earliest trigger: not under its redirect, not for a profile without triggers, unreachable or
        # erased
        assert due(T0, soon) == ["c:cart"]
        assert due(soon, T0 + timedelta(hours=3)) == []
        assert store.due(due_shard("c:cart"), T0, soon) == ["c:cart"]
    finally:
        clock.reset()


def test_the_catalog_keeps_each_product_s_newest_state_with_the_one_it_replaced_and_reads_the_known_ones(store):
    from nextbest.core.catalog import Product, State, Stored

    def state(at, **fields):
        return Product.model_validate({"event_id": "e", "occurred_at": at, "product_id": "sku-1", "name": "Serum",
                                       "url": "https://s/p/1", "price": "32.00"} | fields)  # fmt: skip

    in_stock = State(availability="in_stock", price=Decimal("32.00"), currency="USD")
    assert store.put_product(state(T0)) == Stored("written", None)  # its first state replaces nothing
    assert store.put_product(state(T0 + timedelta(hours=1), availability="out_of_stock")) == Stored("written", in_stock)
    assert store.put_product(state(T0 - timedelta(hours=1), name="Older")) == Stored("outdated")  # late: kept out
    repeat = store.put_product(state(T0 + timedelta(hours=1), availability="out_of_stock"))
    assert repeat == Stored("repeated", in_stock)  # it finds what the stored state replaced, as its first write did
    found = store.products(["sku-1", "sku-unknown"])
    assert list(found) == ["sku-1"] and found["sku-1"].availability == "out_of_stock"
    assert found["sku-1"] == state(T0 + timedelta(hours=1), availability="out_of_stock")
    assert store.products([]) == {}


def test_a_coupon_pool_gives_each_code_to_one_decision_once_and_a_retried_decision_gets_its_own(store):
    from nextbest.core.coupons import CouponsGone

    assert store.upload_coupons("welcome", ["A", "B", "A"]) == (2, 0)  # a code listed twice is one code
    first = store.claim_coupon("welcome", "d-1", T0)
    assert store.claim_coupon("welcome", "d-1", T0) == first  # a retried decision renders the code it was given
    second = store.claim_coupon("welcome", "d-2", T0)
    assert {first, second} == {"A", "B"} and store.coupons_left("welcome") == 0
    with pytest.raises(CouponsGone):
        store.claim_coupon("welcome", "d-3", T0)
    assert store.coupon_holder("welcome", first) == "d-1" and store.coupon_holder("welcome", "Z") is None
    assert store.upload_coupons("welcome", [first, "C"]) == (1, 1)  # a code given out never comes back
    assert store.claim_coupon("welcome", "d-3", T0) == "C"
    assert store.coupons_left("welcome") == store.coupons_left("another") == 0


def test_the_interest_index_is_read_a_page_at_a_time_in_key_order_without_expired_entries(store):
    from nextbest.core.interest import IndexEntry, interest_shard

    shard = interest_shard("c:cus_000")
    mine = [k for k in (f"c:cus_{n:03}" for n in range(400)) if interest_shard(k) == shard][:8]
    lasting, lapsed = T0 + timedelta(days=30), T0 - timedelta(minutes=1)
    store.put_interests([IndexEntry("sku-1", k, lapsed if k == mine[3] else lasting) for k in mine])
    store.put_interests([IndexEntry("sku-2", mine[0], lasting)])  # another product: another partition

    def read(product_id: str) -> list[str]:
        found, after = [], None
        while True:
            page = store.interested(product_id, shard, after, 3, T0)
            found += page.profile_keys
            if page.after is None:
                return found
            after = page.after

    assert read("sku-1") == sorted(set(mine) - {mine[3]})  # each once, in key order, the expired one left out
    store.put_interests([], delete=[("sku-1", mine[0])])
    store.erase([], [], interests=[("sku-1", mine[1]), ("sku-1", "c:never-interested")])
    assert read("sku-1") == sorted(set(mine) - {mine[0], mine[1], mine[3]})
    assert read("sku-2") == [mine[0]]
    assert store.interested("sku-3", shard, None, 3, T0).profile_keys == []
