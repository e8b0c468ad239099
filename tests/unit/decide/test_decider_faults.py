"""Decide when commands and pages misbehave: a trigger handed over for a time the profile no longer holds, and one
customer of the daily sweep whose decision fails."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.campaigns import SWEEP
from nextbest.core.commands import DueTrigger, Sweep, sweep_shard
from nextbest.core.profiles import Order, Profile
from nextbest.memory import MemoryStore

from tests.builders import DUE, Collect, abandoned_cart, decider
from tests.conftest import T0


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


class FailingFor(MemoryStore):
    """A store whose reads of one profile fail (a fault that outlasts the retries)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: str | None = None

    def profile(self, key: str) -> Profile | None:
        if key == self.failing:
            raise ConnectionError("read timed out")
        return super().profile(key)


def test_one_customer_failing_in_a_sweep_page_is_retried_alone_and_the_shard_goes_on():
    store = FailingFor()
    buyers = [f"c:b{i}" for i in range(40) if sweep_shard(f"c:b{i}") == 0][:3]
    for key in buyers:
        order = Order(order_id=f"o-{key}", at=T0 - timedelta(days=90), total=Decimal(40))
        store.save(Profile(key=key, identifiers=[key], orders=[order], order_count=1), [], [key])
    store.failing = buyers[1]
    queue = Collect()
    decide = decider(store)
    decide.decide_queue = queue

    decide.sweep(Sweep(sweep_at=DUE, segment=0), DUE)

    assert queue.sent == [DueTrigger(profile_key=buyers[1], trigger=SWEEP, due_at=DUE).model_dump(mode="json")]
