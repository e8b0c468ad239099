"""Two places where moto is slow for a days-long simulation, made fast without changing what it does.

* DynamoDB ``TransactWriteItems`` deep-copies every table it touches before applying the writes, so it
  can roll back: O(table size) per call, about a second per transaction once a demo table holds tens of
  thousands of items. A rollback only ever needs the items the transaction names, so the snapshot here
  shares every other item and deep-copies those alone. The restored state is the same.
* EventBridge ``PutEvents`` compiles the same JSONPath expressions (``$.detail``…) for every event it
  routes; compiled expressions are immutable, so they are compiled once.

``install()`` is idempotent and only used by the local emulation, never by the functions.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import types
from typing import Any

_touched: contextvars.ContextVar[dict[str, list[dict[str, Any]]] | None] = contextvars.ContextVar(
    "touched", default=None
)
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _fast_transaction_snapshots()
    _compiled_jsonpath()


def _fast_transaction_snapshots() -> None:
    from moto.dynamodb.models import DynamoDBBackend, DynamoType
    from moto.dynamodb.models import table as table_module

    models = __import__("moto.dynamodb.models", fromlist=["copy"])
    original = DynamoDBBackend.transact_write_items

    def snapshot(table: Any, keys: list[dict[str, Any]]) -> Any:
        copied = copy.copy(table)
        copied.items = type(table.items)(table.items.default_factory)
        for hash_value, entry in table.items.items():
            copied.items[hash_value] = dict(entry) if table.range_key_attr else entry
        for key in keys:
            hash_value = DynamoType(key[table.hash_key_attr])
            if hash_value not in table.items:
                continue
            if table.range_key_attr:
                range_value = DynamoType(key[table.range_key_attr])
                if range_value in table.items[hash_value]:
                    copied.items[hash_value][range_value] = copy.deepcopy(table.items[hash_value][range_value])
            else:
                copied.items[hash_value] = copy.deepcopy(table.items[hash_value])
        return copied

    def deepcopy(value: Any, memo: Any = None) -> Any:
        touched = _touched.get()
        if touched is not None and isinstance(value, table_module.Table):
            return snapshot(value, touched.get(value.name, []))
        return copy.deepcopy(value, memo)

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: dict[str, list[dict[str, Any]]] = {}
        for item in transact_items:
            _, op = next(iter(item.items()))
            touched.setdefault(op.get("TableName", ""), []).append(op.get("Key") or op.get("Item") or {})
        token = _touched.set(touched)
        try:
            return original(self, transact_items)
        finally:
            _touched.reset(token)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
    DynamoDBBackend.transact_write_items = transact_write_items


def _compiled_jsonpath() -> None:
    import jsonpath_ng.ext

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
