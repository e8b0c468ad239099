"""The deployed stack's decisions as the next round's training log (``nextbest policy export``).

This closes the loop: decide logs, with every decision, the probability it drew its action with; the export reads
the decisions and the customers' orders from the table and writes one :class:`~nextbest_lab.ope.LoggedDecision`
per decision whose outcome is known, which ``nextbest policy learn`` reads.

- **Context**: :func:`nextbest.decide.live.context` of the decision's trigger and recorded numbers, the very
  function decide applies the policy to, so what is learned is what is applied.
- **Actions and propensities**: a decision the live policy drew lists every action it could draw
  (``campaign:variant@channel`` and ``none``). The customer got the message ``a`` with probability
  pi(a) x P(not held out), what decide records as the decision's propensity, and got nothing with the rest,
  1 - sum_a pi(a) x P(not held out of a's campaign): holdouts and the global control are by a hash of the
  customer, as good as random across customers. A decision the value ranking made (no policy deployed) was
  randomised only over its campaign's variants and the holdout, as ``ope.from_decision`` reads it.
- **Reward**: the value of the customer's orders in the ``horizon`` after the decision, whatever they got
  (attributed revenue would credit nothing to ``none``, and every policy would look better than sending nothing).
  Decisions younger than the horizon are left for the next export; deferrals and fallbacks are not choices.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nextbest.core.attribution import WINDOW
from nextbest.core.campaigns import Campaign, Policy
from nextbest.decide import live

from nextbest_lab import scan
from nextbest_lab.ope import NONE, LoggedDecision


@dataclass
class Found:
    """The decisions and each profile's orders (``(at, total)``), with identity links to follow after merges."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, ddb: Any, table: str) -> Found:
        found = cls()
        for kind, key, value in scan.items(ddb, table):
            if kind == "profile":
                found.orders[key] = [
                    (datetime.fromisoformat(o["at"]), float(o["total"])) for o in value.get("orders", [])
                ]
            elif kind == "link":
                found.links[key] = value
            else:
                found.decisions.append(value)
        return found

    def orders_of(self, key: str) -> list[tuple[datetime, float]]:
        """A profile merged since: its orders are in the one it leads to."""
        return self.orders.get(scan.follow(self.links, key, lambda k: k in self.orders), [])


def p_send(campaign: Campaign, rules: Policy) -> float:
    """The chance a customer is not held out of this campaign (nor in the global control group)."""
    return (1 - rules.global_control_percent / 100) * (1 - campaign.holdout_percent / 100)


def logged(
    decision: Mapping[str, Any], reward: float, campaigns: Mapping[str, Campaign], rules: Policy
) -> LoggedDecision | None:
    """One decision as a logged round, or None if nothing was randomised in it (or it is not a choice)."""
    action, campaign_id = decision.get("action"), decision.get("campaign_id")
    if action not in ("send", "holdout", "none") or decision.get("fallback_of"):
        return None
    scores: dict[str, float] = decision.get("scores") or {}
    ctx = live.context(decision["trigger"], scores)
    probs = {k.removeprefix(live.PROBABILITY): v for k, v in scores.items() if k.startswith(live.PROBABILITY)}
    if probs:  # drawn by the live policy
        candidates = [a for a in probs if a != NONE]
        if action == "send":
            taken = live.action_id(str(campaign_id), decision["variant"], decision["channel"])
            propensity = float(decision["propensity"])
        else:
            taken = NONE
            sent = sum(p * p_send(campaigns[a.split(":", 1)[0]], rules) for a, p in probs.items() if a != NONE)
            propensity = 1.0 - sent
    else:  # the value ranking: only the variant and the holdout were drawn
        if action == "none" or not campaign_id or not decision.get("propensity") or campaign_id not in campaigns:
            return None
        candidates = [f"{campaign_id}:{v.id}" for v in campaigns[campaign_id].variants]
        taken = f"{campaign_id}:{decision['variant']}" if action == "send" else NONE
        propensity = float(decision["propensity"])
    return LoggedDecision(
        decision_id=decision["decision_id"],
        context=ctx,
        candidates=candidates,
        action=taken,
        propensity=min(max(propensity, 1e-9), 1.0),
        reward=reward,
    )


def export(
    found: Found,
    campaigns: Iterable[Campaign],
    rules: Policy,
    now: datetime,
    horizon: timedelta = WINDOW,
) -> list[LoggedDecision]:
    """Every decision whose ``horizon`` has passed by ``now``, as a logged round (see the module docstring)."""
    by_id = {c.id: c for c in campaigns}
    out = []
    for decision in sorted(found.decisions, key=lambda d: (d["decided_at"], d["decision_id"])):
        at = datetime.fromisoformat(decision["decided_at"])
        if at + horizon > now:
            continue
        orders = found.orders_of(decision["profile_key"])
        reward = sum(total for when, total in orders if at < when <= at + horizon)
        record = logged(decision, reward, by_id, rules)
        if record is not None:
            out.append(record)
    return out


def write(records: Iterable[LoggedDecision], path: Path) -> int:
    count = 0
    with path.open("w") as lines:
        for record in records:
            lines.write(json.dumps(record.model_dump(mode="json"), sort_keys=True) + "\n")
            count += 1
    return count
