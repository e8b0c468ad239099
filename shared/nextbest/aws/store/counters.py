"""The campaigns' counter items: the statistics the tally writes (``nextbest.tally``), read back summed, and the
caps and budgets decide leases blocks of."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import CONDITION_FAILED, TRANSACTION_ATTEMPTS, Table
from nextbest.core import clock
from nextbest.core.counters import DAILY_RETENTION, Counter
from nextbest.core.ports import Tallied

TALLY = "TALLY#"
"""Sort key prefix of the tally's items, one per campaign and stream shard (``TALLY#<shard id>``)."""
DAY = "DAY#"
"""Sort key prefix of a campaign's daily counts (the bandit's allocation per day), kept apart once folded."""
TOTAL = TALLY + "TOTAL"
"""The tally's item of a campaign that closed shards' items are folded into."""
NAMED = "|"
"""In a tally item, an attribute ``<counter item>|<attribute>`` holds that counter's count: ``FUNNEL#a#email|sent``."""
LIMITS = ("HOUR#", "BUDGET")
"""Items of the caps and budgets (what was leased), not statistics."""
BOOKKEEPING = ("seq", "created_at", "expires_at")
"""Attributes of counter items that are no count: a tally item's checkpoint and age, a daily item's expiry."""
SEQUENCE_DIGITS = 40
"""A stream record's sequence number has at most 40 digits (more than a DynamoDB number holds): the checkpoint is
kept as a string of this many digits, zero-padded, so that comparing strings in a condition compares numbers."""


def sequence_text(sequence: int) -> str:
    return str(sequence).zfill(SEQUENCE_DIGITS)


def summed(items: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """A campaign's statistics by counter item (``ARM#…``, ``FUNNEL#…``, ``VARIANT#…``, ``DAY#…``) from its items
    as Query returns them: the tally's shard items added up, and the counter items the steps added to inside their
    own writes before the tally existed (kept: they hold the history)."""
    found: dict[str, dict[str, Decimal]] = {}
    for item in items:
        sk = item["sk"]["S"]
        if sk.startswith(LIMITS):
            continue
        for name, value in item.items():
            if "N" not in value or name in BOOKKEEPING:
                continue
            if sk.startswith(TALLY):
                if NAMED not in name:
                    continue  # the item's own bookkeeping (created_at)
                key, _, name = name.partition(NAMED)
            else:
                key = sk
            counts = found.setdefault(key, {})
            counts[name] = counts.get(name, Decimal(0)) + Decimal(value["N"])
    return found


class CounterItems(Table):
    def counts(self, campaign_id: str) -> dict[str, dict[str, Decimal]]:
        """Every statistic of a campaign (see :func:`summed`): one Query of its partition."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": f"s:{campaign_id}"}},
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return summed(items)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        """(sends, conversions) per variant of a campaign."""
        counts = self.counts(campaign_id)
        found = {v: counts.get(f"VARIANT#{v}", {}) for v in variants}
        return {v: (int(c.get("sends", 0)), int(c.get("conversions", 0))) for v, c in found.items()}

    def add_tally(
        self,
        shard: str,
        campaign_id: str,
        counters: Sequence[Counter],
        through: int,
        since: int | None = None,
        before: int | None = None,
    ) -> Tallied:
        """One UpdateItem: ADD every count and SET the checkpoint, on the condition ``Tallies.add_tally`` states. The
        refusal returns the item (``ReturnValuesOnConditionCheckFailure``), the success its old checkpoint, so the
        tally neither reads before it writes nor needs GetItem."""
        names = {"#s": "seq", "#c": "created_at"}
        now = {"N": str(int(clock.now().timestamp()))}
        values: dict[str, Any] = {":through": {"S": sequence_text(through)}, ":now": now}
        adds = []
        counts = [(c.sk, name, by) for c in counters for name, by in ((c.attribute, c.by), *c.also)]
        for i, (sk, name, by) in enumerate(counts):
            names[f"#a{i}"], values[f":a{i}"] = f"{sk}{NAMED}{name}", {"N": str(by)}
            adds.append(f"#a{i} :a{i}")
        if since is not None:
            condition, values[":since"] = "#s = :since", {"S": sequence_text(since)}
        elif before is not None:
            condition, values[":before"] = "attribute_not_exists(#s) OR #s < :before", {"S": sequence_text(before)}
        else:
            condition = "attribute_not_exists(#s)"
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"s:{campaign_id}"}, "sk": {"S": TALLY + shard}},
                UpdateExpression="ADD " + ", ".join(adds) + " SET #s = :through, #c = if_not_exists(#c, :now)",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if aws.error_code(error) != "ConditionalCheckFailedException":
                raise
            refused: dict[str, Any] = dict(error.response)
            found = refused.get("Item", {}).get("seq", {}).get("S")
            return Tallied(added=False, checkpoint=int(found) if found is not None else None)
        return Tallied(added=True, created="seq" not in response.get("Attributes", {}))

    def fold_closed(self, campaign_id: str, created_before: datetime) -> int:
        """Each old shard item moves into the campaign's kept items in one transaction: its deletion, on condition
        that its checkpoint is the one read (nothing counted into it since, nobody folded it first), the ADD of its
        totals to ``TALLY#TOTAL`` and of its daily counts to their ``DAY#<date>`` items (which expire
        ``DAILY_RETENTION`` after their day, so the total does not grow a day at a time). Rare (a shard's first
        batch), so none of these is a hot item."""
        campaign = {"S": f"s:{campaign_id}"}
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :t)",
            FilterExpression="created_at < :before",
            ExpressionAttributeValues={
                ":p": campaign, ":t": {"S": TALLY}, ":before": {"N": str(int(created_before.timestamp()))}
            },
        )  # fmt: skip
        folded = 0
        for item in (i for page in pages for i in page.get("Items", []) if i["sk"]["S"] != TOTAL):
            delete = {"TableName": self.table, "Key": {"pk": campaign, "sk": item["sk"]}, "ConditionExpression":
                      "seq = :seq", "ExpressionAttributeValues": {":seq": item["seq"]}}  # fmt: skip
            writes: list[dict[str, Any]] = [{"Delete": delete}]
            writes += [{"Update": u} for u in self._folded_into(campaign, item)]
            try:
                self._transact(writes)
            except ClientError as error:
                if aws.error_code(error) not in CONDITION_FAILED:
                    raise
                continue  # folded by another worker, or still being counted into: left for the next fold
            folded += 1
        return folded

    def _folded_into(self, campaign: dict[str, str], item: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ADDs that move a shard item's counts to the total and to the daily items."""
        targets: dict[str, dict[str, Any]] = {}
        for name, value in item.items():
            if NAMED not in name or "N" not in value:
                continue
            key, _, attribute = name.partition(NAMED)
            if key.startswith(DAY):
                targets.setdefault(key, {})[attribute] = value
            else:
                targets.setdefault(TOTAL, {})[name] = value
        updates = []
        for sk, counts in targets.items():
            names = {f"#a{i}": name for i, name in enumerate(counts)}
            values = {f":a{i}": value for i, value in enumerate(counts.values())}
            expression = "ADD " + ", ".join(f"{n} :{n[1:]}" for n in names)
            if sk != TOTAL:
                day = datetime.fromisoformat(sk.removeprefix(DAY)).replace(tzinfo=UTC)
                values[":exp"] = {"N": str(int((day + DAILY_RETENTION).timestamp()))}
                expression += " SET expires_at = if_not_exists(expires_at, :exp)"
            updates.append({"TableName": self.table, "Key": {"pk": campaign, "sk": {"S": sk}},
                            "UpdateExpression": expression, "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values})  # fmt: skip
        return updates

    def lease(self, limit: Counter, want: Decimal) -> Decimal:
        """One ADD of ``want`` conditioned on room for all of it; when there is less, the refusal returns the count
        (``ReturnValuesOnConditionCheckFailure``: no read, no GetItem grant) and an ADD of what is left follows,
        conditioned the same way (another lease came in between: it is refused again and tries on what it read)."""
        assert limit.limit is not None
        for _ in range(TRANSACTION_ATTEMPTS):
            taking = Counter(limit.pk, limit.sk, want, limit.limit, limit.attribute, limit.expires_at)
            update = taking.update(self.table)["Update"] | {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
            try:
                self._retried(lambda: self.client.update_item(**update))  # noqa: B023 (called at once)
                return want
            except ClientError as error:
                if aws.error_code(error) != "ConditionalCheckFailedException":
                    raise
                response: dict[str, Any] = dict(error.response)
                item: dict[str, Any] = response.get("Item", {})  # the count that refused it
            want = limit.limit - Decimal(item.get(limit.attribute, {}).get("N", "0"))
            if want <= 0:
                return Decimal(0)
        return Decimal(0)  # the item kept moving: refuse this time, it is as good as full
