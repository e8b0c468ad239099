"""Decide when alarms and pages misbehave: an alarm that rings for a time the profile no longer holds, and one
customer of the daily sweep whose decision fails."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.campaigns import SWEEP
from nextbest.core.commands import DueTrigger, Sweep, sweep_shard
from nextbest.core.profiles import Order, Profile
from nextbest.memory import MemoryStore

from tests.builders import DUE, Collect, abandoned_cart, decider
from tests.conftest import T0


def test_an_alarm_ringing_for_a_stale_time_is_put_back_on_the_time_the_profile_holds():
    """Two ingest workers armed the cart alarm from different reads and the older write (an earlier time) won:
    the alarm rings early, and the real trigger would never ring."""
    store = MemoryStore()
    abandoned_cart(store, {"email": False})  # nothing to send; the cart's alarm is what matters
    later = DUE + timedelta(minutes=40)
    store.change("c:cus_1", lambda p: p.model_copy(update={"triggers": {"cart_abandoned": later}, "handled": {}}))
    decide = decider(store)

    assert decide.handle(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=DUE), DUE) is None

    assert decide.scheduler.armed == [(DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=later), None)]


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
