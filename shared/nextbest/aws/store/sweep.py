"""The daily sweep's index of buyers."""

from __future__ import annotations

from typing import Any

from nextbest.aws.store.table import BY_SWEEP, Table
from nextbest.core.ports import BuyerPage


class SweepIndex(Table):
    def buyers(self, shard: int, start: dict[str, Any] | None, limit: int = 200) -> BuyerPage:
        """One page of the profile keys of buyers in a sweep shard, and where to continue (or None)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_SWEEP,
            "KeyConditionExpression": "sweep = :s",
            "ExpressionAttributeValues": {":s": {"S": str(shard)}},
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self.client.query(**kwargs)
        return BuyerPage([item["pk"]["S"] for item in page.get("Items", [])], page.get("LastEvaluatedKey"))
