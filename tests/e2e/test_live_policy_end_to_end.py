"""The live policy deployed with the stack: shipped in decide's ML layer, checked at cold start, and drawing the
message on the emulation; the decision records its version, the distribution it drew from and the probability."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nextbest.core.campaigns import load_campaigns, load_policy
from nextbest.decide import live
from nextbest_cli.explain import explain, from_table
from nextbest_lab import policy as lab
from nextbest_lab import policy_log

from tests.builders import table_store
from tests.conftest import T0, sample

ROOT = Path(__file__).resolve().parents[2]


def write_policy(directory: Path, uplift: dict[str, float], floor: float = 0.01) -> Path:
    """A best-single-action policy, saved by the lab as ``nextbest policy learn`` does, promoted."""
    actions = [*uplift, "none"]
    arrays = {"coef": np.zeros((len(actions), 0)), "intercept": np.array([*uplift.values(), 0.0])}
    member = lab.Member("best_single", arrays)
    supported = np.ones(len(actions), dtype=bool)
    learned = lab.Learned(lab.Encoder([], [], [], [], []), actions, supported, member, floor, "revenue", 0.0)
    lab.save(learned, directory, training={"records": 0}, gate={"promoted": True})
    return directory


@pytest.fixture(scope="module")
def cdk_out_with_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.local import synthesize

    policy = write_policy(tmp_path_factory.mktemp("policy") / "live", {"cart-abandonment:urgency@email": 2.0})
    return synthesize(tmp_path_factory.mktemp("cdk.out.policy"), {"policyDir": str(policy)})


@pytest.fixture
def emulation_with_policy(aws: None, cdk_out_with_policy: Path, tmp_path: Path) -> Iterator[Any]:
    from nextbest.core import clock

    from infra.local.emulator import Emulation

    manual = clock.ManualClock(T0)
    clock.install(manual)
    try:
        emulation = Emulation(cdk_out_with_policy, manual, tmp_path / "logs").deploy()
        yield emulation
        assert emulation.ungranted_requests() == {}
    finally:
        clock.reset()


def put(emulation: Any, *names: str) -> None:
    entries = []
    for name in names:
        e = sample(f"{name}.json")
        entries.append(
            {
                "EventBusName": emulation.output("BusName"),
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
            }
        )
    assert emulation.client("events").put_events(Entries=entries)["FailedEntryCount"] == 0


def test_the_deployed_policy_draws_the_message_and_the_decision_logs_its_probability(emulation_with_policy):
    emulation = emulation_with_policy
    # Given a stack deployed with a policy that favours the cart reminder's urgency variant by e-mail
    policy_dir = Path(emulation.environment("decide")["POLICY_DIR"])
    assert sorted(p.name for p in policy_dir.iterdir()) == ["manifest.json", "policy.json", "policy.npz"]
    # When a customer who accepts e-mail leaves a cart and its trigger comes due
    put(emulation, "product.viewed", "cart.updated", "customer.identified", "consent.updated")
    emulation.drain()
    emulation.advance(T0 + timedelta(hours=3))
    # Then decide drew the urgency e-mail with the policy, and logged the probability it drew it with
    store = table_store(emulation)
    [decision_id] = store.decisions_of("c:cus_5")
    stored = store.decision(decision_id)
    assert stored is not None
    decision = stored.decision
    assert decision.model_versions["policy"] == live.LivePolicy.load(policy_dir).version
    probs = {k.removeprefix(live.PROBABILITY): v for k, v in decision.scores.items() if k.startswith(live.PROBABILITY)}
    assert set(probs) == {"cart-abandonment:reminder@email", "cart-abandonment:urgency@email", "none"}
    assert sum(probs.values()) == pytest.approx(1.0)
    assert (decision.action, decision.variant, decision.channel) == ("send", "urgency", "email")
    assert decision.propensity == pytest.approx(probs["cart-abandonment:urgency@email"] * 0.95 * 0.9)
    assert decision.scores["uplift:cart-abandonment:urgency@email"] == 2.0
    [message] = emulation.sent_emails()
    assert decision.decision_id in message.raw_data
    # And explain, reading the table, shows the policy's uplift and probability for each action of the campaign
    key, found = from_table(emulation.output("TableName"), "cus_5")
    text = explain(key, found)
    assert "      urgency@email: uplift +2.00, p=0.980" in text
    assert "      reminder@email: uplift unknown (explored only), p=0.010" in text
    # When the customer orders an hour later, and the decisions are exported a week later (the loop's next log)
    emulation.advance(T0 + timedelta(hours=4))
    order = sample("order.placed.json")
    order["detail"] |= {"occurred_at": (T0 + timedelta(hours=4)).isoformat(), "total": "45.00"}
    emulation.client("events").put_events(
        Entries=[{"EventBusName": emulation.output("BusName"), "Source": order["source"],
                  "DetailType": order["detail-type"], "Detail": json.dumps(order["detail"])}]
    )  # fmt: skip
    emulation.drain()
    found = policy_log.Found.scan(emulation.client("dynamodb"), emulation.output("TableName"))
    campaigns = load_campaigns(ROOT / "campaigns")
    [record] = policy_log.export(found, campaigns, load_policy(ROOT / "campaigns"), T0 + timedelta(days=9))
    # Then the logged decision is the draw, with the probability the customer got it, and the order as its reward
    assert record.decision_id == decision.decision_id and record.action == "cart-abandonment:urgency@email"
    assert record.propensity == pytest.approx(decision.propensity) and record.reward == 45.0
    assert sorted(record.candidates) == ["cart-abandonment:reminder@email", "cart-abandonment:urgency@email"]
    assert record.context == live.context("cart_abandoned", decision.scores)
