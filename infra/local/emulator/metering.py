"""Metering: what the functions' AWS requests would be billed, counted from the real requests as they are made.

Botocore hooks on the default session (installed with the runtime's, before any client exists) see every call the
functions and the emulation make. For DynamoDB they read the items a request touches from moto's backend, before
and after it, and bill them by DynamoDB's rules (``billing``): write units of the larger item image, doubled in a
committed transaction, plus the indexes the write reaches; read units by size and consistency. Every other call is
counted by service, operation and target (queue, topic), so the lab can price SQS, SNS, Scheduler and EventBridge
requests. The wall time of each invocation, and the part of it spent inside AWS calls (moto, here), are kept per
function: what the function's own code took.

Calls made while no function runs (the event-source mappings, the scheduler firing, the demo's driver) are kept
under the stage ``None``. A hook never fails a request: an error in metering is recorded in :attr:`Metering.errors`
(the benchmark refuses to report figures if there is any).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import boto3

from infra.local.emulator.account import ACCOUNT, REGION
from infra.local.emulator.billing import Index, Item, item_size, item_write, read_units
from infra.local.emulator.runtime import Function, LambdaRuntime

WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
BILLED_FAILURES = ("ConditionalCheckFailedException", "TransactionCanceledException")
"""A failed request DynamoDB still bills (its condition was evaluated); a throttled or invalid one it does not."""
TRANSACTION_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheck",
}


@dataclass
class StageUsage:
    """What one function (a pipeline step) used, or what was used outside any function (stage ``None``)."""

    wru: float = 0.0
    """Write units, the table's and its indexes'."""
    index_wru: float = 0.0
    """Of :attr:`wru`, those of the indexes."""
    rru: float = 0.0
    invocations: int = 0
    records: int = 0
    seconds: float = 0.0
    """Wall time of the invocations."""
    aws_seconds: float = 0.0
    """Of :attr:`seconds`, the time spent inside AWS calls (moto's work here, a network round trip on AWS)."""

    @property
    def own_seconds(self) -> float:
        """What the function's own code took."""
        return max(self.seconds - self.aws_seconds, 0.0)


class Write(NamedTuple):
    """One item written (or whose conditional write failed) and what it cost."""

    stage: str | None
    operation: str
    table: str
    key: tuple[str, ...]
    units: int
    index_units: int
    applied: bool
    transactional: bool


class Call(NamedTuple):
    stage: str | None
    service: str
    operation: str
    target: str
    """The queue's or topic's name, ``sms`` for a text sent by SNS, ``table`` or ``table/index`` for DynamoDB."""


class _Target(NamedTuple):
    operation: str
    table: str
    key: dict[str, Any]
    requested: Item | None
    before: Item | None


@dataclass
class _Pending:
    service: str
    operation: str
    params: dict[str, Any]
    targets: list[_Target] = field(default_factory=list)
    started: float = 0.0


class Metering:
    """Capacity units and calls, per stage, of everything the emulation's functions ask of AWS."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self.runtime = runtime
        self.usage: defaultdict[str | None, StageUsage] = defaultdict(StageUsage)
        self.writes: list[Write] = []
        self.calls: Counter[Call] = Counter()
        self.entries: Counter[Call] = Counter()
        """Messages or events carried by the calls (a batch carries several; a single call one)."""
        self.query_items: Counter[tuple[str | None, str]] = Counter()
        """Items returned by Query, per (stage, ``table/index``)."""
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._schemas: dict[str, tuple[tuple[str, ...], tuple[Index, ...]]] = {}

    def install(self) -> Metering:
        """Hook the default session (before any client is created: a client copies the session's hooks) and time
        every invocation."""
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-parameter-build", self._parameters)
        events.register("before-call", self._started)
        events.register("after-call", self._finished)
        invoke = self.runtime.invoke

        @functools.wraps(invoke)
        def timed(function: Function, event: dict[str, Any], twin: bool = False) -> Any:
            started = time.perf_counter()
            try:
                return invoke(function, event, twin)
            finally:
                with self._lock:
                    usage = self.usage[function.name]
                    usage.invocations += 1
                    usage.records += len(event.get("Records", []))
                    usage.seconds += time.perf_counter() - started

        # The runtime is shared with the event sources and the scheduler, which call ``runtime.invoke``: timing it
        # here keeps metering in this module.
        self.runtime.invoke = timed  # type: ignore[method-assign]
        return self

    def count(self, service: str, operation: str, target: str, entries: int = 1) -> None:
        """A request made without botocore, by a poller that stands for one AWS runs (the queues' event-source
        mappings), counted as that request."""
        with self._lock:
            call = Call(self.stage, service, operation, target)
            self.calls[call] += 1
            self.entries[call] += entries

    @property
    def stage(self) -> str | None:
        current = self.runtime.current
        return current.name if current is not None else None

    # -- hooks -----------------------------------------------------------------------------------------------------

    def _parameters(self, params: dict[str, Any], model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        try:
            service = kwargs["event_name"].split(".")[1]
            pending = _Pending(service, model.name, params)
            if service == "dynamodb" and model.name in WRITES:
                pending.targets = [t._replace(before=self._item(t.table, t.key)) for t in self._targets(pending)]
            context["metering"] = pending
        except Exception as error:  # metering never fails a request
            self.errors.append(f"{kwargs.get('event_name')}: {type(error).__name__}: {error}")

    def _started(self, context: dict[str, Any], **kwargs: Any) -> None:
        if "metering" in context:
            context["metering"].started = time.perf_counter()

    def _finished(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        pending: _Pending | None = context.pop("metering", None)
        if pending is None:
            return
        try:
            elapsed = time.perf_counter() - pending.started
            with self._lock:
                stage = self.stage
                self.usage[stage].aws_seconds += elapsed
                call = Call(stage, pending.service, pending.operation, _target(pending))
                self.calls[call] += 1
                self.entries[call] += _entries(pending)
            if pending.service == "dynamodb":
                error = parsed.get("Error", {}).get("Code") if http_response.status_code >= 300 else None
                self._bill(stage, pending, parsed, error)
        except Exception as error:  # metering never fails a request
            self.errors.append(f"{kwargs.get('event_name')}: {type(error).__name__}: {error}")

    # -- DynamoDB --------------------------------------------------------------------------------------------------

    def _bill(self, stage: str | None, pending: _Pending, parsed: dict[str, Any], error: str | None) -> None:
        if pending.operation in WRITES:
            if error is None or error in BILLED_FAILURES:
                self._bill_writes(stage, pending, applied=error is None)
        elif error is None:
            units = self._read_units(stage, pending, parsed)
            with self._lock:
                self.usage[stage].rru += units

    def _bill_writes(self, stage: str | None, pending: _Pending, applied: bool) -> None:
        transactional = pending.operation == "TransactWriteItems"
        for target in pending.targets:
            keys, indexes = self._schema(target.table)
            after = self._item(target.table, target.key) if applied else target.requested
            cost = item_write(
                target.before, after, applied=applied, transactional=transactional, indexes=indexes, table_keys=keys
            )
            write = Write(
                stage, target.operation, target.table, tuple(_scalar(target.key[k]) for k in keys),
                cost.units, cost.index_units, cost.applied, transactional,
            )  # fmt: skip
            with self._lock:
                self.writes.append(write)
                usage = self.usage[stage]
                usage.wru += cost.units + cost.index_units
                usage.index_wru += cost.index_units

    def _read_units(self, stage: str | None, pending: _Pending, parsed: dict[str, Any]) -> float:
        params, operation = pending.params, pending.operation
        if operation == "GetItem":
            return read_units(item_size(self._item(params["TableName"], params["Key"])), _consistent(params))
        if operation == "BatchGetItem":
            return sum(
                read_units(item_size(self._item(table, key)), _consistent(request))
                for table, request in params["RequestItems"].items()
                for key in request["Keys"]
            )
        if operation == "TransactGetItems":
            gets = [entry["Get"] for entry in params["TransactItems"]]
            return sum(2 * read_units(item_size(self._item(g["TableName"], g["Key"])), True) for g in gets)
        if operation in ("Query", "Scan"):
            items = parsed.get("Items", [])
            with self._lock:
                self.query_items[(stage, _target(pending))] += len(items)
            return read_units(sum(item_size(i) for i in items), _consistent(params))
        return 0.0

    def _targets(self, pending: _Pending) -> Iterator[_Target]:
        """The items a write request names (before their images are read)."""
        params, operation = pending.params, pending.operation
        if operation == "PutItem":
            yield self._target(operation, params["TableName"], params["Item"], params["Item"])
        elif operation in ("UpdateItem", "DeleteItem"):
            yield self._target(operation, params["TableName"], params["Key"], None)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                [(kind, action)] = entry.items()
                item = action.get("Item")
                yield self._target(TRANSACTION_ITEMS[kind], action["TableName"], action.get("Key", item), item)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        yield self._target("PutItem", table, item, item)
                    else:
                        yield self._target("DeleteItem", table, request["DeleteRequest"]["Key"], None)

    def _target(self, operation: str, table: str, item: Mapping[str, Any], requested: Item | None) -> _Target:
        keys, _ = self._schema(table)
        return _Target(operation, table, {k: item[k] for k in keys}, requested, None)

    def _schema(self, table_name: str) -> tuple[tuple[str, ...], tuple[Index, ...]]:
        """The table's key attributes and its indexes, as moto holds them (created from the template)."""
        if table_name not in self._schemas:
            table = _backend().get_table(table_name)
            keys = (table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else []))
            indexes = tuple(
                Index(i.name, tuple(k["AttributeName"] for k in i.schema), _projected(i.projection))
                for i in [*table.indexes, *table.global_indexes]
            )
            self._schemas[table_name] = (keys, indexes)
        return self._schemas[table_name]

    def _item(self, table_name: str, key: Mapping[str, Any]) -> Item | None:
        """The item as moto holds it now, in DynamoDB's wire format, or None."""
        from moto.dynamodb.models.dynamo_type import DynamoType

        keys, _ = self._schema(table_name)
        found = _backend().get_table(table_name).get_item(*(DynamoType(dict(key[k])) for k in keys))
        return found.to_json()["Attributes"] if found is not None else None  # type: ignore[no-any-return]


def _backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][REGION]


def _projected(projection: dict[str, Any]) -> tuple[str, ...] | None:
    kind = projection.get("ProjectionType", "ALL")
    return None if kind == "ALL" else tuple(projection.get("NonKeyAttributes", []) if kind == "INCLUDE" else [])


def _consistent(params: Mapping[str, Any]) -> bool:
    return bool(params.get("ConsistentRead", False))


def _scalar(value: Mapping[str, Any]) -> str:
    [content] = value.values()
    return str(content)


def _target(pending: _Pending) -> str:
    """What a call is about, for pricing: a queue, a topic, an SMS, a table or index."""
    params = pending.params
    if pending.service == "sqs" and "QueueUrl" in params:
        return str(params["QueueUrl"]).rsplit("/", 1)[-1]
    if pending.service == "sns" and pending.operation == "Publish":
        if "PhoneNumber" in params:
            return "sms"
        return str(params.get("TopicArn") or params.get("TargetArn", "")).rsplit(":", 1)[-1]
    if pending.service == "dynamodb" and "TableName" in params:
        return str(params["TableName"]) + (f"/{params['IndexName']}" if "IndexName" in params else "")
    return ""


def _entries(pending: _Pending) -> int:
    params = pending.params
    for name in ("Entries", "TransactItems"):
        if isinstance(params.get(name), list):
            return len(params[name])
    return 1
