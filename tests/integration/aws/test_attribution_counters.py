"""Attribution and funnel counters on the emulated table: the steps write the facts, the tally (run by the
emulation's stream mapping) counts them, incrementally, exactly once, read back as uplift arm totals."""

from datetime import timedelta
from decimal import Decimal

from nextbest.aws.senders import SnsSms
from nextbest.core.events import LineItem, OrderPlaced
from nextbest.deliver.service import deliver
from nextbest.feedback.notifications import parse
from nextbest.feedback.service import handle
from nextbest.ingest.service import ingest
from nextbest_lab.uplift import ArmTotals

from tests.builders import DELAYS, DUE, Collect, abandoned_cart, ses_email, table_store
from tests.conftest import EVENTS


def counters(emulation, campaign: str) -> dict[str, dict]:
    """The campaign's statistics once the tally has counted everything on the stream."""
    emulation.drain()
    return table_store(emulation).counts(campaign)


def test_an_order_after_a_reminder_is_counted_once_for_its_arm_and_variant(emulation):
    store = table_store(emulation)
    decision = abandoned_cart(store, {"email": True}, email="ann@example.org")
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    order = OrderPlaced(event_id="o", occurred_at=DUE + timedelta(hours=5), customer_id="cus_1", order_id="ord-9",
                        items=[item], total=Decimal("32.00"))  # fmt: skip
    for _ in range(2):  # a redelivered order event changes nothing twice
        ingest(store, "order.placed", order, DELAYS)
    found = counters(emulation, "cart-abandonment")
    assert found[f"VARIANT#{decision.variant}"] == {"sends": 1, "conversions": 1}
    totals = ArmTotals.from_counters(found["ARM#treatment"])
    assert totals == ArmTotals(recipients=1, conversions=1, revenue=32.0, revenue_sq=1024.0)


def test_the_funnel_counts_each_stage_of_a_message_once_however_often_its_events_arrive(emulation):
    store = table_store(emulation)
    requests = Collect()
    email = ses_email(emulation)
    decision = abandoned_cart(store, {"email": True}, email="ann@example.org")
    assert deliver(store, decision.decision_id, email, SnsSms()).outcome == "sent"
    for name in ("delivery.json", "open.json", "open.json", "click.json", "delivery.json", "click.json"):
        text = (EVENTS / "ses" / name).read_text()
        body = text.replace("DECISION_ID", decision.decision_id).replace("RECIPIENT", "ann@example.org")
        handle(store, requests, parse(body))
    funnel = counters(emulation, "cart-abandonment")[f"FUNNEL#{decision.variant}#email"]
    assert funnel == {"decided": 1, "sent": 1, "delivered": 1, "opened": 1, "clicked": 1}
