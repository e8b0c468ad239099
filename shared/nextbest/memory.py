"""An in-memory profile store with DynamoDB's conditional semantics, for benchmarks and property tests.

It replaces only the two I/O seams of :class:`nextbest.aws.store.Store` (reading items and writing a group of
conditional puts atomically), so identity resolution, merging and redirects run the production code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from nextbest.aws.store import Store
from nextbest.core.ports import Conflict


class MemoryStore(Store):
    def __init__(self) -> None:
        super().__init__("memory", client=object())
        self.items: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def prefetch(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in self._cache:
                item = self.items.get(key)
                self._cache[key] = copy.deepcopy(item) if item is not None else None

    def _write(self, puts: list[dict[str, Any]]) -> None:
        targets = [put["Put"]["Item"]["pk"]["S"] for put in puts]
        if len(set(targets)) != len(targets):
            raise ValueError("Transaction request cannot include multiple operations on one item")
        for index, put in enumerate(puts):
            op = put["Put"]
            current = self.items.get(op["Item"]["pk"]["S"])
            condition = op.get("ConditionExpression")
            if condition == "attribute_not_exists(pk)" and current is not None:
                raise Conflict(op["Item"]["pk"]["S"], failed=index)
            if condition == "version = :v" and (
                current is None or current.get("version") != op["ExpressionAttributeValues"][":v"]
            ):
                raise Conflict(op["Item"]["pk"]["S"], failed=index)
        for put in puts:
            item = put["Put"]["Item"]
            self.items[item["pk"]["S"]] = copy.deepcopy(item)
        self.writes += 1
