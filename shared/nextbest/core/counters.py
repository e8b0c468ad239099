"""Shared counters and their key schema: every item `s:<campaign>` a step adds to, defined once.

A counter is added in the same DynamoDB write as the fact it counts (see the README, *What is counted*), so
nothing is counted twice on a retry. The keys below are the only place the schema is spelt out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

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
