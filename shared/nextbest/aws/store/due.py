"""The due index: the profiles a poll hands to decide."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from nextbest.aws.store.table import BY_DUE, Table
from nextbest.core.due import to_index


class DueIndex(Table):
    def due(self, shard: int, after: datetime, until: datetime) -> list[str]:
        """The keys of the profiles in ``shard`` whose index time is in ``(after, until]``, every page of them."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_DUE,
            "KeyConditionExpression": "due_shard = :s AND due_at BETWEEN :a AND :u",
            "ExpressionAttributeValues": {
                ":s": {"S": str(shard)},
                ":a": {"S": to_index(after + timedelta(seconds=1))},  # index times are whole seconds
                ":u": {"S": to_index(until)},
            },
        }
        return self._keys(kwargs)
