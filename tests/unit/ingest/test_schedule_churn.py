"""Issue 14, schedule churn: a trigger that moves later keeps the alarm it has (no Scheduler call per event); the
alarm rings early and decide puts it back on the profile's time, so the message still goes when it is due."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.commands import DueTrigger
from nextbest.core.events import CartUpdated, LineItem
from nextbest.ingest.service import ingest, to_arm
from nextbest.memory import MemoryStore

from tests.builders import DELAYS, Collect, decider, known_customer
from tests.conftest import T0

ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))


def cart(store, event_id: str, at):
    detail = CartUpdated(event_id=event_id, occurred_at=at, customer_id="cus_1", items=[ITEM])
    return ingest(store, "cart.updated", detail, DELAYS)


def test_only_new_triggers_and_triggers_due_earlier_are_armed():
    armed = {"cart_abandoned": T0, "browse_abandoned": T0}
    now = {"cart_abandoned": T0 + timedelta(minutes=30), "browse_abandoned": T0 - timedelta(minutes=5), "new": T0}

    assert to_arm(armed, now) == {"browse_abandoned": T0 - timedelta(minutes=5), "new": T0}


def test_a_cart_updated_again_arms_nothing_and_its_early_alarm_is_put_back_on_the_later_time():
    store = MemoryStore()
    known_customer(store, {"email": True}, email="ann@example.org")
    first = cart(store, "c1", T0)
    assert first.arm == {"cart_abandoned": T0 + timedelta(hours=1)}

    second = cart(store, "c2", T0 + timedelta(minutes=30))  # the cart moved: due at 10:30, not 10:00

    assert second.arm == {}  # no Scheduler call
    ring = decider(store, Collect())
    early = DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=T0 + timedelta(hours=1))
    assert ring.handle(early, early.due_at) is None  # not due yet: nothing decided…
    later = T0 + timedelta(hours=1, minutes=30)
    assert ring.scheduler.armed == [(early.model_copy(update={"due_at": later}), None)]  # …and the alarm moves on
    deliveries = Collect()
    decision = decider(store, deliveries).handle(early.model_copy(update={"due_at": later}), later)
    assert decision is not None and decision.action == "send" and len(deliveries.sent) == 1
