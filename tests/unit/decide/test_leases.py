"""Caps and budgets taken in leased blocks: never passed, whatever several deciders do in whatever order, and
under-used by at most what the deciders hold unspent."""

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from nextbest.core.commands import DueTrigger
from nextbest.core.counters import Counter
from nextbest.core.events import CartUpdated, ConsentUpdated, CustomerIdentified, LineItem
from nextbest.decide.leases import MAX_SHARE, Leases
from nextbest.decide.service import Decider
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import CAMPAIGNS, CHANNELS, DELAYS, DUE, POLICY, Alarms, Collect
from tests.conftest import T0

CAP = "send rate cap reached this hour"


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=400),
    deciders=st.integers(min_value=1, max_value=6),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=9), st.booleans()),
        max_size=300,
    ),
)
def test_concurrent_deciders_never_pass_a_limit_and_leave_at_most_their_blocks_unspent(limit, deciders, steps):
    """Each step: one decider takes an amount (a send is 1, an offer costs more) and commits, or fails to commit
    and gives it back. Leases of all deciders interleave on one item."""
    store = MemoryStore()
    pools = [Leases(store) for _ in range(deciders)]
    used = Decimal(0)
    most = Decimal(9)
    for who, amount, commits in steps:
        pool = pools[who % deciders]
        taking = Counter("s:c", "BUDGET", Decimal(amount), Decimal(limit), refusal="budget spent")
        refused = pool.take([taking], T0)
        leased = store.counters.get(("s:c", "BUDGET"), {}).get("n", Decimal(0))
        assert leased <= limit
        if refused is None:
            if commits:
                used += amount
            else:
                pool.give_back([taking])
        else:
            assert refused == "budget spent"
            assert leased == limit  # refused only once everything was leased...
            unspent = max(Decimal(limit) / MAX_SHARE, most) + most
            assert used >= limit - deciders * unspent  # ...and what is not used is held in the deciders' blocks
        assert used <= limit


def test_a_campaign_capped_at_three_an_hour_sends_three_whichever_of_two_deciders_decides():
    capped = [c.model_copy(update={"max_sends_per_hour": 3}) if c.id == "cart-abandonment" else c for c in CAMPAIGNS]
    store = MemoryStore()
    queues = [Collect(), Collect()]
    deciders = [
        Decider(store, dict.fromkeys(CHANNELS, q), Collect(), Alarms(), capped, POLICY, "https://s") for q in queues
    ]
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    decisions = []
    for n in range(8):
        customer = f"cus_{n}"
        for kind, event in (
            ("customer.identified", CustomerIdentified(event_id=f"i{n}", occurred_at=T0, customer_id=customer,
                                                       email=f"{customer}@example.com")),
            ("consent.updated", ConsentUpdated(event_id=f"k{n}", occurred_at=T0, customer_id=customer, channel="email",
                                               granted=True)),
            ("cart.updated", CartUpdated(event_id=f"c{n}", occurred_at=T0, customer_id=customer, items=[item])),
        ):  # fmt: skip
            ingest(store, kind, event, DELAYS)
        due = DueTrigger(profile_key=f"c:{customer}", trigger="cart_abandoned", due_at=DUE)
        decisions.append(deciders[n % 2].handle(due, DUE + timedelta(minutes=n)))

    sent = [d for d in decisions if d.action == "send" and d.campaign_id == "cart-abandonment"]
    assert len(sent) == 3
    assert sum(len(q.sent) for q in queues) == 3
    refused = [d for d in decisions if d not in sent]
    assert (
        all(c.reason == CAP for d in refused for c in d.candidates if c.campaign_id == "cart-abandonment")
        and len(refused) == 5
    )
    assert store.counters[("s:cart-abandonment", "HOUR#2026-11-02T10")]["n"] == 3
