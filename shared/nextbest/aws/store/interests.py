"""The interest index (``nextbest.core.interest``): ``int:<product id>#<shard>`` / ``<profile key>``, one small item
(about 60 bytes: one write unit) per product and interested customer, expiring with its interest (``expires_at``).

Written in batches of 25 (``BatchWriteItem``) before the profile that records the interests; read by the fan-out,
one eventually consistent Query page per shard and message (half a read unit per 4 KB: about 4 for a page of 500).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from nextbest.aws.store.table import Table
from nextbest.core.interest import IndexEntry, InterestPage, interest_shard


def interest_key(product_id: str, shard: int) -> str:
    return f"int:{product_id}#{shard}"


def deletions(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The requests deleting the entries of these (product id, profile key) pairs (a missing one is no error)."""
    keys = sorted({(interest_key(product_id, interest_shard(key)), key) for product_id, key in pairs})
    return [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in keys]


def interest_item(entry: IndexEntry) -> dict[str, Any]:
    return {
        "pk": {"S": interest_key(entry.product_id, entry.shard)},
        "sk": {"S": entry.profile_key},
        "expires_at": {"N": str(int(entry.expires_at.timestamp()))},
    }


class InterestItems(Table):
    def put_interests(self, entries: Sequence[IndexEntry], delete: Sequence[tuple[str, str]] = ()) -> None:
        self._batch_write([{"PutRequest": {"Item": interest_item(e)}} for e in entries] + deletions(delete))

    def interested(self, product_id: str, shard: int, after: str | None, limit: int, now: datetime) -> InterestPage:
        pk = interest_key(product_id, shard)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "FilterExpression": "expires_at > :now",
            "ProjectionExpression": "sk",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":now": {"N": str(int(now.timestamp()))}},
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": after}}
        page = self.client.query(**kwargs)
        last = page.get("LastEvaluatedKey")
        return InterestPage([item["sk"]["S"] for item in page.get("Items", [])], last["sk"]["S"] if last else None)
