"""Test scenarios built through the production ingest and decide code, so tests state only what differs."""

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from nextbest.campaigns import load_campaigns
from nextbest.decisioning import Decision, decide_for
from nextbest.events import CartUpdated, ConsentUpdated, CustomerIdentified, LineItem
from nextbest.ingest import ingest
from nextbest.store import Store

from tests.conftest import T0

CAMPAIGNS = load_campaigns(Path(__file__).resolve().parents[1] / "campaigns")
DELAYS = {"cart_abandoned": timedelta(hours=1)}
DUE = T0 + timedelta(hours=1)


class Collect:
    """A deliver queue that keeps what it is given (a fake, not a mock)."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, body: str, attributes: dict | None = None, delay_seconds: int = 0) -> None:
        self.sent.append(json.loads(body))


def abandoned_cart(store: Store, consent: dict[str, bool], customer: str = "cus_1", **contact: str) -> Decision:
    """A customer with these consents and contact details leaves a cart; the reminder is decided at DUE."""
    ingest(
        store,
        "customer.identified",
        CustomerIdentified(event_id="i", occurred_at=T0, customer_id=customer, **contact),
        DELAYS,
    )
    for channel, granted in consent.items():
        ingest(
            store,
            "consent.updated",
            ConsentUpdated(
                event_id=f"k-{channel}", occurred_at=T0, customer_id=customer, channel=channel, granted=granted
            ),
            DELAYS,
        )
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id=customer, items=[item]), DELAYS)
    queue = Collect()
    [decision] = decide_for(store, queue, CAMPAIGNS, f"c:{customer}", DUE, "https://s")  # type: ignore[arg-type]
    assert [m["decision_id"] for m in queue.sent] == ([decision.decision_id] if decision.action == "send" else [])
    return decision
