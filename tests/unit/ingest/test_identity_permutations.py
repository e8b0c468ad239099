"""Identity resolution end to end (production ingest code, in-memory store with DynamoDB's conditions):
any arrival order of a stream of one customer's events, duplicates included, gives the same final profiles; with
two customers, no order ever merges them (which of them a shared cookie stays with is the first link's)."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from nextbest.core.events import CartUpdated, ConsentUpdated, CustomerIdentified, LineItem, OrderPlaced, ProductViewed
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
DELAYS = {"cart_abandoned": timedelta(hours=1)}
CUSTOMER_2 = {"customer_id": "cus_2"}
IDENTITIES = [
    {"customer_id": "cus_1"},
    {"anonymous_id": "cookie-a"},
    {"anonymous_id": "cookie-b"},
    {"email": "ann@example.org"},
    {"phone": "+14155550100"},
    {"device_token": "apns-token-0001"},
]
KEYS = [
    "c:cus_1",
    "c:cus_2",
    "a:cookie-a",
    "a:cookie-b",
    "e:ann@example.org",
    "e:eve@example.org",
    "p:+14155550100",
    "t:apns-token-0001",
]
EVE = {"email": "eve@example.org"}
NAMING_THEIR_ADDRESS = [{"email": "ann@example.org"}, EVE, {"customer_id": "cus_1", "email": "eve@example.org"}]
"""Consents that say which address they are for (one that does not is for the address held when it is applied,
which depends on whether a change of address was applied first)."""


def item(n: int) -> LineItem:
    return LineItem(
        product_id=f"sku-{n % 3}", name="Thing", quantity=1, unit_price=Decimal("10.00"), category=f"cat-{n % 2}"
    )


@st.composite
def streams(draw, identities=IDENTITIES, consenting=None):
    """Events of these identities; consents by ``consenting`` identities if given."""
    events = []
    for n in range(draw(st.integers(min_value=1, max_value=14))):
        ids = draw(st.sampled_from(identities))
        at = T0 + timedelta(minutes=draw(st.integers(min_value=0, max_value=240)))
        kind = draw(st.sampled_from(["view", "cart", "empty", "order", "resent", "consent", "link"]))
        common = {"event_id": f"e{n}", "occurred_at": at}
        if kind == "view":
            events.append(("product.viewed", ProductViewed(product_id=f"sku-{n % 3}", category="c", **common, **ids)))
        elif kind in ("cart", "empty"):
            items = [item(n)] if kind == "cart" else []
            events.append(("cart.updated", CartUpdated(items=items, **common, **ids)))
        elif kind == "order":
            events.append(
                (
                    "order.placed",
                    OrderPlaced(order_id=f"o{n}", items=[item(n)], total=Decimal("10.00"), **common, **ids),
                )
            )
        elif kind == "resent" and any(k == "order.placed" for k, _ in events):
            # The producer sends an order again under a new event id: it must still count once.
            original = draw(st.sampled_from([e for k, e in events if k == "order.placed"]))
            events.append(("order.placed", original.model_copy(update={"event_id": f"e{n}"})))
        elif kind == "consent":
            ids = draw(st.sampled_from(consenting)) if consenting else ids
            events.append(
                ("consent.updated", ConsentUpdated(channel="email", granted=draw(st.booleans()), **common, **ids))
            )
        else:
            other = draw(st.sampled_from(identities))
            events.append(
                (
                    "customer.identified",
                    CustomerIdentified(first_name=f"N{n}", **common, **ids, **other)
                    if set(ids) != set(other)
                    else CustomerIdentified(**common, **ids),
                )
            )
    return events


def run(stream) -> dict[str, dict]:
    store = MemoryStore()
    for kind, event in stream:
        ingest(store, kind, event, DELAYS)
    store.forget()
    final = {}
    for key, profile in store.resolve(KEYS).items():
        if profile is not None:
            final[key] = profile.model_dump(exclude={"version", "categories", "products"}) | {
                "affinity": (profile.categories, profile.products)
            }
    return final


def same(left: dict, right: dict) -> bool:
    """Equal, except affinity sums, which are floats and may differ in the last bit by summation order."""
    if left.keys() != right.keys():
        return False
    for key in left:
        a, b = dict(left[key]), dict(right[key])
        (ca, pa), (cb, pb) = a.pop("affinity"), b.pop("affinity")
        if a != b or ca.keys() != cb.keys() or pa.keys() != pb.keys():
            return False
        if not all(math.isclose(x[k], y[k], rel_tol=1e-9) for x, y in ((ca, cb), (pa, pb)) for k in x):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(stream=streams(), data=st.data())
def test_any_arrival_order_with_redeliveries_gives_the_same_profiles(stream, data):
    shuffled = data.draw(st.permutations(stream))
    redelivered = shuffled + data.draw(st.lists(st.sampled_from(stream), max_size=4)) if stream else shuffled
    assert same(run(stream), run(redelivered))


@settings(max_examples=200, deadline=None)
@given(stream=streams([*IDENTITIES, EVE], NAMING_THEIR_ADDRESS), data=st.data())
def test_with_two_addresses_any_order_gives_the_same_profiles(stream, data):
    """Claims and verified addresses compete (a claim never replaces a verified address, the first claim stays),
    whatever the order they arrive in."""
    assert same(run(stream), run(data.draw(st.permutations(stream))))


@settings(max_examples=200, deadline=None)
@given(stream=streams([*IDENTITIES, CUSTOMER_2]), data=st.data())
def test_two_customers_are_never_merged_whatever_the_order(stream, data):
    for order in (stream, data.draw(st.permutations(stream))):
        store = MemoryStore()
        for kind, event in order:
            ingest(store, kind, event, DELAYS)
        for profile in store.profiles.values():
            assert sum(key.startswith("c:") for key in profile.identifiers) <= 1


def test_a_link_merges_transitively_to_the_customer_id():
    stream = [
        (
            "customer.identified",
            CustomerIdentified(event_id="1", occurred_at=T0, anonymous_id="cookie-a", email="ann@example.org"),
        ),
        (
            "customer.identified",
            CustomerIdentified(event_id="2", occurred_at=T0, email="ann@example.org", phone="+14155550100"),
        ),
        (
            "customer.identified",
            CustomerIdentified(event_id="3", occurred_at=T0, phone="+14155550100", customer_id="cus_2"),
        ),
    ]
    final = run(stream)
    assert {p["key"] for p in final.values()} == {"c:cus_2"}
    assert set(final) == {"a:cookie-a", "e:ann@example.org", "p:+14155550100", "c:cus_2"}
