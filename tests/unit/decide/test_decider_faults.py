"""Decide when commands misbehave: a trigger handed over for a time the profile no longer holds."""

from datetime import timedelta

from nextbest.core.commands import DueTrigger
from nextbest.memory import MemoryStore

from tests.builders import DUE, abandoned_cart, decider


def test_a_trigger_handed_over_for_a_time_the_profile_no_longer_holds_decides_and_arms_nothing():
    """The cart moved later after the command was sent: the due index holds the new time, whose poll hands the
    profile over again, so decide neither decides early nor sets an alarm of its own."""
    store = MemoryStore()
    abandoned_cart(store, {"email": False})  # nothing to send; the cart's trigger is what matters
    later = DUE + timedelta(minutes=40)
    store.change("c:cus_1", lambda p: p.model_copy(update={"triggers": {"cart_abandoned": later}, "handled": {}}))
    decide = decider(store)

    assert decide.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE) is None

    assert decide.scheduler.armed == []
    assert store.profile("c:cus_1").triggers == {"cart_abandoned": later}
