"""``nextbest explain CUSTOMER``: every decision made for a customer, with every campaign considered.

Against a deployed stack it resolves the identifier to the customer's profile and reads their decisions
through the ``by_customer`` index; locally it reads the decision log the demo writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from nextbest.aws.store import Store
from nextbest.core.decision import Candidate, Decision
from nextbest.decide.live import PROBABILITY, UPLIFT

MARKS = {"chosen": "✓", "eligible": "·", "eliminated": "✗"}


def identity_key(customer: str) -> str:
    """``cus_42`` → ``c:cus_42``; an e-mail or phone number, or an already prefixed key, as such."""
    if len(customer) > 2 and customer[1] == ":" and customer[0] in "cepta":
        return customer
    if "@" in customer:
        return f"e:{customer.lower()}"
    if customer.startswith("+"):
        return f"p:{customer}"
    return f"c:{customer}"


def from_table(table: str, customer: str) -> tuple[str, list[Decision]]:
    store = Store(table)
    key = identity_key(customer)
    profile = store.resolve([key])[key]
    canonical = profile.key if profile else key
    decisions = []
    for decision_id in store.decisions_of(canonical):
        found = store.decision(decision_id)
        if found:
            decisions.append(found.decision)
    return canonical, decisions


IDENTITIES = "identities.json"
"""Beside a decision log, the identity links of the table it came from (``make demo`` writes it): every other
identifier of a customer (e-mail, phone, cookie) -> the key of their profile, so a log is searched by any of them."""


def from_log(path: Path, customer: str) -> tuple[str, list[Decision]]:
    key = identity_key(customer)
    links = path.with_name(IDENTITIES)
    if links.exists():
        key = json.loads(links.read_text()).get(key, key)
    decisions = []
    with path.open() as log:
        for line in log:
            record = json.loads(line)
            if record["profile_key"] == key:
                decisions.append(Decision.model_validate(record))
    return key, decisions


def explain(key: str, decisions: Iterable[Decision]) -> str:
    ordered = sorted(decisions, key=lambda d: (d.decided_at, d.decision_id))
    lines = [f"{key}: {len(ordered)} decision{'s' if len(ordered) != 1 else ''}"]
    for d in ordered:
        what = {
            "send": f"SEND {d.campaign_id}/{d.variant} by {d.channel}",
            "holdout": f"HOLD OUT ({d.group}) — would have sent {d.campaign_id}/{d.variant} by {d.channel}",
            "defer": f"DEFER to {d.defer_until:%Y-%m-%d %H:%M} UTC ({_why_later(d)}) {d.campaign_id} by {d.channel}"
            if d.defer_until
            else "DEFER",
            "none": "NOTHING",
        }[d.action]
        extra = []
        if d.propensity is not None:
            extra.append(f"p={d.propensity:.3f}")
        if d.value is not None:
            extra.append(f"value {d.value:.2f}")
        if d.step:
            extra.append(f"follow-up step {d.step}")
        if d.fallback_of:
            extra.append(f"fallback of {d.fallback_of}")
        if d.coupon:
            extra.append(f"coupon {d.coupon}")
        lines.append("")
        lines.append(f"{d.decided_at:%Y-%m-%d %H:%M} UTC  {d.trigger} (due {d.trigger_due_at:%m-%d %H:%M})  →  {what}")
        lines.append(f"    decision {d.decision_id}" + (f"  [{', '.join(extra)}]" if extra else ""))
        customer = {k: v for k, v in d.scores.items() if not k.startswith((UPLIFT, PROBABILITY))}
        if customer:
            scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(customer.items()))
            versions = ", ".join(f"{k}={v}" for k, v in sorted(d.model_versions.items()))
            lines.append(f"    scores: {scores}" + (f"  (models {versions})" if versions else ""))
        else:
            lines.append("    scores: none (no models deployed: rule-based propensities)")
        width = max((len(c.campaign_id) for c in d.candidates), default=0)
        for c in d.candidates:
            value = f"{c.value:7.2f}" if c.value is not None else "      -"
            lines.append(f"    {MARKS[c.outcome]} {c.campaign_id:<{width}}  {c.outcome:<10} {value}  {c.reason}")
            lines += _policy_lines(d, c)
        if f"{PROBABILITY}none" in d.scores:
            none, version = d.scores[f"{PROBABILITY}none"], d.model_versions.get("policy", "")
            lines.append(f"    policy {version}: sending nothing (uplift 0 by definition), p={none:.3f}")
    return "\n".join(lines)


def _why_later(d: Decision) -> str:
    return "quiet hours or the customer's best hour" if "policy" in d.model_versions else "quiet hours"


def _policy_lines(d: Decision, c: Candidate) -> list[str]:
    """Under a candidate the live policy weighed, each of its actions (variant and channel): the policy's estimated
    uplift over sending nothing and the probability it was drawn with."""
    lines = []
    prefix = f"{PROBABILITY}{c.campaign_id}:"
    for key in sorted(k for k in d.scores if k.startswith(prefix)):
        action = key.removeprefix(PROBABILITY)
        uplift = d.scores.get(f"{UPLIFT}{action}")
        shown = f"uplift {uplift:+.2f}" if uplift is not None else "uplift unknown (explored only)"
        lines.append(f"      {action.removeprefix(c.campaign_id + ':')}: {shown}, p={d.scores[key]:.3f}")
    return lines
