"""What the ports promise callers: errors that can reach a log name no person."""

from decimal import Decimal

import pytest
from nextbest.core.commands import DueTrigger
from nextbest.core.events import CartUpdated, CustomerIdentified, LineItem
from nextbest.core.ports import Conflict, pseudonym
from nextbest.ingest.service import ingest
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, DUE, T0, decider


def test_a_conflict_names_its_item_by_a_pseudonym_never_by_its_key():
    conflict = Conflict("e:ann@example.org", why="kept changing")
    assert "ann@example.org" not in str(conflict) and pseudonym("e:ann@example.org") in str(conflict)
    assert conflict.key == "e:ann@example.org"  # still there for the code that handles it


class AlwaysConflicting(MemoryStore):
    def commit_decision(self, decision, status, profile, counters=()):
        raise Conflict(decision.profile_key)


def test_given_a_profile_that_keeps_changing_then_decide_gives_up_without_naming_the_customer():
    store = AlwaysConflicting()
    email = "ann@example.org"
    ingest(store, "customer.identified", CustomerIdentified(event_id="i", occurred_at=T0, email=email), DELAYS)
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, email=email, items=[item]), DELAYS)
    key = store.profile(f"e:{email}").key
    with pytest.raises(Conflict) as gave_up:
        decider(store).handle(DueTrigger(profile_key=key, trigger="cart_abandoned", due_at=DUE), DUE)
    assert email not in str(gave_up.value) and "kept changing" in str(gave_up.value)
