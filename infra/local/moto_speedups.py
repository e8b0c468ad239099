"""Two places where moto is slow for a days-long simulation, made fast without changing what it does.

* DynamoDB ``TransactWriteItems`` deep-copies every table it touches before applying the writes, so it
  can roll back: O(table size) per call, about a second per transaction once a demo table holds tens of
  thousands of items. A rollback only ever needs the items the transaction names, so here those alone
  are saved, and put back if the transaction is cancelled. The state after a rollback is the same.
* EventBridge ``PutEvents`` compiles the same JSONPath expressions (``$.detail``…) for every event it
  routes; compiled expressions are immutable, so they are compiled once.
* Every request lists its response class's methods (``inspect.getmembers`` over the class), every SQS queue
  attribute is named by converting CamelCase afresh, and checking a received message's retention builds every
  attribute of its queue (counting its messages) twice to read one: about a tenth of a demo's CPU. The method
  names and conversions are computed once; the retention is read directly.

And one place where moto is less faithful than AWS: its request handlers are not atomic across threads
(a conditional write checks, then writes, and another thread can run in between), whereas every DynamoDB
request is. ``install()`` serializes moto's request dispatch, so concurrent workers race exactly as they
would against DynamoDB: on whole requests.

``install()`` is idempotent and only used by the local emulation and tests, never by the functions.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import types
from typing import Any

_touched: contextvars.ContextVar[bool] = contextvars.ContextVar("touched", default=False)
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _fast_transaction_snapshots()
    _compiled_jsonpath()
    _cached_lookups()
    _atomic_requests()


def _fast_transaction_snapshots() -> None:
    from moto.dynamodb.models import DynamoDBBackend, DynamoType
    from moto.dynamodb.models import table as table_module

    models = __import__("moto.dynamodb.models", fromlist=["copy"])
    original = DynamoDBBackend.transact_write_items
    missing = object()

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if _touched.get() and isinstance(value, table_module.Table):
            return value  # restored item by item below instead
        return copy.deepcopy(value, memo)

    @functools.wraps(original)
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName", ""))
            key = op.get("Key") or op.get("Item") or {}
            if table is None or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            holder = table.items.get(hash_value, {}) if range_value is not None else table.items
            slot = range_value if range_value is not None else hash_value
            before = holder.get(slot, missing)
            saved.append((table, hash_value, range_value, before if before is missing else copy.deepcopy(before)))
        token = _touched.set(True)
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                holder = table.items[hash_value] if range_value is not None else table.items
                slot = range_value if range_value is not None else hash_value
                if item is missing:
                    holder.pop(slot, None)
                else:
                    holder[slot] = item
            raise
        finally:
            _touched.reset(token)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _compiled_jsonpath() -> None:
    import jsonpath_ng.ext

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)


def _cached_lookups() -> None:
    import moto.core.responses
    import moto.sqs.models
    from moto.core import utils

    method_names = functools.lru_cache(maxsize=None)(utils.method_names_from_class)
    moto.core.responses.method_names_from_class = method_names  # type: ignore[attr-defined]
    snake_case = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
    moto.sqs.models.camelcase_to_underscores = snake_case  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > utils.unix_time())

    moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


def _atomic_requests() -> None:
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    lock = threading.RLock()

    @functools.wraps(original)
    def dispatch(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = dispatch  # type: ignore[method-assign]
