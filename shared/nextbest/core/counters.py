"""Shared counters and their key schema: every counter of a campaign (``s:<campaign>``), defined once.

Steps never write the statistics (arms, funnel, variants, days): they write the facts, on items keyed by one
customer (a decision and its status, an order's credits on the profile), and :func:`tally` says which counts a
change of such an item adds. The table's stream carries every change to the ``tally`` step, which folds them
into counter items it alone writes, exactly once (``nextbest.tally``); the in-memory store applies the same
function on each write. Caps and budgets are limits decide leases blocks of (``nextbest.decide.leases``). The
keys below are the only place the schema is spelt out (see the README, *What is counted*).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from nextbest.core.decision import Decision

DAILY_RETENTION = timedelta(days=400)
"""How long a campaign's daily counter (``DAY#<date>``: the bandit's allocation, charted by the report) is kept: over a
year of days to chart; the totals live on in the campaign's ``VARIANT#`` counters, which are kept."""


@dataclass(frozen=True)
class Counter:
    """Atomic ADDs on one shared counter item, refused when ``attribute`` would pass ``limit``.

    A transaction may name an item only once, so every attribute added to one item travels in one Counter
    (``also`` holds the others).
    """

    pk: str
    sk: str
    by: Decimal
    limit: Decimal | None = None
    attribute: str = "n"
    expires_at: datetime | None = None
    refusal: str = "limit reached"
    also: tuple[tuple[str, Decimal], ...] = ()

    def update(self, table: str) -> dict[str, Any]:
        adds = [(self.attribute, self.by), *self.also]
        names = {f"#a{i}": name for i, (name, _) in enumerate(adds)}
        values: dict[str, Any] = {f":a{i}": {"N": str(by)} for i, (_, by) in enumerate(adds)}
        expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
        if self.expires_at:
            expression += " SET expires_at = if_not_exists(expires_at, :exp)"
            values[":exp"] = {"N": str(int(self.expires_at.timestamp()))}
        update: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": self.pk}, "sk": {"S": self.sk}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if self.limit is not None:
            update["ConditionExpression"] = "attribute_not_exists(#a0) OR #a0 <= :room"
            values[":room"] = {"N": str(self.limit - self.by)}
        return {"Update": update}


def combined(counters: Sequence[Counter]) -> list[Counter]:
    """Unlimited counters merged into one per item (adds of the same attribute summed)."""
    items: dict[tuple[str, str], dict[str, Decimal]] = {}
    for c in counters:
        for name, by in ((c.attribute, c.by), *c.also):
            attributes = items.setdefault((c.pk, c.sk), {})
            attributes[name] = attributes.get(name, Decimal(0)) + by
    merged = []
    for (pk, sk), attributes in items.items():
        (first, by), *rest = sorted(attributes.items())
        merged.append(Counter(pk, sk, by, attribute=first, also=tuple(rest)))
    return merged


Stage = Literal["decided", "sent", "delivered", "bounced", "complained", "failed", "opened", "clicked"]


STAGES: tuple[Stage, ...] = ("decided", "sent", "delivered", "bounced", "complained", "failed", "opened", "clicked")
"""``decided``: chosen and queued (a fallback is the same decision re-routed, not a new one); ``sent``:
accepted by SES/SNS (a resend after a soft bounce counts again); ``failed``: rejected, unrenderable or
undeliverable on that channel; opens and clicks are unique per message."""


class Tallied(Protocol):
    """A decision or a logged message: what identifies its funnel."""

    @property
    def campaign_id(self) -> str | None: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def channel(self) -> str | None: ...


def funnel_key(message: Tallied) -> str:
    return f"FUNNEL#{message.variant or '-'}#{message.channel}"


def funnel(message: Tallied, stage: Stage, by: Decimal = Decimal(1)) -> Counter:
    """The counter one funnel stage of a sent message adds to."""
    return Counter(f"s:{message.campaign_id}", funnel_key(message), by, attribute=stage)


COUPONS = "COUPONS"
"""A campaign's coupon counter item: ``issued`` (codes in messages decide queued), ``redeemed`` (codes an order
used, each counted once), ``orders`` and ``revenue`` (the orders that used one; ``nextbest.core.attribution``)."""
DECIDED = ("queued", "held_out")
"""The statuses decide records a send or a holdout with (a fallback is recorded ``waiting``: not a new decision)."""
MOVES: dict[str, tuple[Stage, frozenset[str]]] = {
    "sent": ("sent", frozenset({"sending"})),
    "delivered": ("delivered", frozenset({"sent"})),
    "bounced": ("bounced", frozenset({"sent", "delivered"})),
    "rejected": ("failed", frozenset({"sent"})),
    "failed": ("failed", frozenset({"sent", "delivered"})),
}
"""The funnel stage a status change proves, from the statuses it counts from (a refusal before sending, from
``sending``, is no failure of a sent message)."""
FACTS: dict[str, Stage] = {"complained_at": "complained", "opened_at": "opened", "clicked_at": "clicked"}
"""The funnel stage a decision's fact proves, the first time it is set."""
Version = tuple[str, Collection[str]]
"""A decision record as one write left it: its status and the names of the facts it holds."""


def decided(decision: Decision) -> list[Counter]:
    """What a send or holdout adds when it is decided: the recipients of its arm (first messages only: see
    ``nextbest.core.attribution``), its funnel and its variant (for uplift and Thompson sampling)."""
    if decision.action not in ("send", "holdout") or decision.campaign_id is None:
        return []
    campaign = f"s:{decision.campaign_id}"
    arm = "treatment" if decision.action == "send" else decision.group or "holdout"
    taken = []
    if decision.step == 0:  # a follow-up belongs to its first message's episode: the arms' one recipient
        taken.append(Counter(campaign, f"ARM#{arm}", Decimal(1), attribute="recipients"))
    if decision.action == "holdout":
        return taken
    taken.append(funnel(decision, "decided"))
    if decision.coupon:
        taken.append(Counter(campaign, COUPONS, Decimal(1), attribute="issued"))
    if decision.variant:
        taken.append(Counter(campaign, f"VARIANT#{decision.variant}", Decimal(1), attribute="sends"))
        day = decision.decided_at.strftime("%Y-%m-%d")  # the bandit's allocation over time, for the report
        taken.append(Counter(campaign, f"DAY#{day}", Decimal(1), attribute=f"sends#{decision.variant}"))
    return taken


def tally(decision: Decision, before: Version | None, after: Version | None) -> list[Counter]:
    """The counts one write of a decision record adds: its decision when created, the funnel stage a status
    change or a first fact proves. A write that changes nothing counted (a claim, a reason) adds nothing, and
    neither does a deletion (erasure, expiry)."""
    if after is None or decision.campaign_id is None:
        return []
    if before is None:
        return decided(decision) if after[0] in DECIDED else []
    (was, had), (status, facts) = before, after
    counted = []
    move = MOVES.get(status)
    if move is not None and status != was and was in move[1]:
        counted.append(funnel(decision, move[0]))
    counted += [funnel(decision, stage) for fact, stage in FACTS.items() if fact in facts and fact not in had]
    return counted


@dataclass(frozen=True)
class Change:
    """One record of the table's stream: its sequence number in its shard, and the counts the change adds."""

    sequence: int
    counts: tuple[Counter, ...] = ()


def dump_credits(counters: Sequence[Counter]) -> str:
    """An order's credits as the profile item carries them to the tally (one write's credits, never a sum)."""
    adds = [[c.pk, c.sk, name, str(by)] for c in combined(counters) for name, by in ((c.attribute, c.by), *c.also)]
    return json.dumps(adds, separators=(",", ":"))


def load_credits(text: str) -> list[Counter]:
    return [Counter(pk, sk, Decimal(by), attribute=name) for pk, sk, name, by in json.loads(text)]
