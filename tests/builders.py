"""Test scenarios built through the production ingest and decide code, so tests state only what differs."""

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from nextbest.aws.senders import SesEmail
from nextbest.aws.store import Store
from nextbest.core.campaigns import load_campaigns, load_policy
from nextbest.core.commands import DueTrigger, Release
from nextbest.core.decision import Decision
from nextbest.core.events import CHANNELS, CartUpdated, ConsentUpdated, CustomerIdentified, LineItem
from nextbest.decide.service import Decider
from nextbest.ingest.service import ingest

from tests.conftest import T0

ROOT = Path(__file__).resolve().parents[1] / "campaigns"
CAMPAIGNS = [c.model_copy(update={"holdout_percent": 0.0}) for c in load_campaigns(ROOT)]
"""The repository's campaigns with holdouts off: these scenarios are about what happens to a message."""
_POLICY = load_policy(ROOT)
POLICY = _POLICY.model_copy(
    update={
        "global_control_percent": 0.0,
        "quiet_hours": _POLICY.quiet_hours.model_copy(update={"default_time_zone": "UTC"}),  # T0 is 09:00 UTC
    }
)
DELAYS = {"cart_abandoned": timedelta(hours=1)}
DUE = T0 + timedelta(hours=1)


class Alarms:
    """A scheduler that remembers what it was asked to arm (a fake, not a mock)."""

    def __init__(self) -> None:
        self.armed: list[tuple[object, object]] = []

    def arm(self, due: object, at: object = None) -> None:
        self.armed.append((due, at))


def decider(store: Store, deliver: "Collect | None" = None) -> Decider:
    """Decide as the Lambda does, with fakes for the queues and the scheduler."""
    queue = deliver or Collect()  # one for every channel's queue
    return Decider(store, dict.fromkeys(CHANNELS, queue), Collect(), Alarms(), CAMPAIGNS, POLICY, "https://s")


class Collect:
    """A deliver queue that keeps what it is given (a fake, not a mock)."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, body: str, attributes: dict | None = None, delay_seconds: int = 0) -> None:
        self.sent.append(json.loads(body))

    def send_all(self, bodies: list[str]) -> None:
        self.sent.extend(json.loads(body) for body in bodies)


def release(store: Store, decide: Collect, now=DUE) -> list[str]:
    """Run decide on the Releases handed to it (fallbacks, retries) as its queue would: the ids it queued for
    deliver."""
    queued = Collect()
    while decide.sent:
        decider(store, queued).release(Release.model_validate(decide.sent.pop(0)), now)
    return [request["decision_id"] for request in queued.sent]


def known_customer(store: Store, consent: dict[str, bool], customer: str = "cus_1", **contact: str) -> None:
    """A customer identified with these contact details, who gave (or refused) these consents at T0."""
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


def abandoned_cart(store: Store, consent: dict[str, bool], customer: str = "cus_1", **contact: str) -> Decision:
    """A customer with these consents and contact details leaves a cart; the reminder is decided at DUE."""
    known_customer(store, consent, customer, **contact)
    item = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id=customer, items=[item]), DELAYS)
    queue = Collect()
    decision = decider(store, queue).handle(
        DueTrigger(profile_key=f"c:{customer}", trigger="cart_abandoned", due_at=DUE), DUE
    )
    assert decision is not None
    assert [m["decision_id"] for m in queue.sent] == ([decision.decision_id] if decision.action == "send" else [])
    return decision


def erasure_key(emulation):
    """The key ingest names tombstones with: the emulated stack's secret, read as the function reads it."""
    from nextbest.aws import secrets

    arn = emulation.environment("ingest")["ERASURE_SECRET_ARN"]
    return lambda: secrets.erasure_key(arn)


def table_store(emulation) -> Store:
    """The emulated stack's table as ingest's store (it reads and writes tombstones)."""
    return Store(emulation.output("TableName"), erasure_key=erasure_key(emulation))


def ses_email(emulation) -> SesEmail:
    """The deliver function's SES sender, configured as the emulated stack configures it."""
    env = emulation.environment("deliver")
    return SesEmail(env["SENDER"], env["CONFIGURATION_SET"], env["UNSUBSCRIBE_URL"], lambda: b"test-key")


def examples_approved(directory: Path, *names: str) -> Path:
    """The live house policy and these example campaigns of ``docs/campaigns``, approved, in ``directory``: the
    campaign set of an end-to-end test of what the shipped set does not use."""
    import shutil

    from nextbest_cli.approvals import approve

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "campaigns" / "policy.toml", directory)
    for name in names:
        shutil.copy(root / "docs" / "campaigns" / name, directory)
        approve(directory / name, "marketing-lead", T0.date())
    return directory


def example_edited(directory: Path, name: str, old: str, new: str) -> Path:
    """``directory`` holding the example campaign ``name`` of ``docs/campaigns`` with ``old`` (which must be in it)
    replaced by ``new``: a campaign file broken, or changed, one field at a time."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "campaigns" / name).read_text()
    assert old in text
    (directory / name).write_text(text.replace(old, new))
    return directory
