"""Event-source mappings: each mapped queue polled in batches, its function invoked, what succeeded deleted,
and reported failures made visible again, so SQS's own redrive moves them to the DLQ after
``maxReceiveCount``; and the table's stream read through moto's DynamoDB Streams API (``GetShardIterator``,
``GetRecords``), filtered by the mapping's filter criteria and handed to its function in batches, in order, a
failed batch handed again until it succeeds, as Lambda does. A stream batch is gathered as Lambda's poller gathers
it, on the emulated clock: from its first record until the mapping's ``MaximumBatchingWindowInSeconds`` has passed,
or ``BatchSize`` records passed the filters, never across a boundary of its tumbling window.

With :class:`~infra.local.emulator.faults.Faults`, the mappings misbehave as SQS and Lambda may: poison
messages among the real ones, messages held back and delivered after later ones, a second worker given a
batch whose visibility expired while the first still runs, a worker crashing mid-batch, a processed message
delivered again; a stream batch crashing mid-way (handed again), run twice at once, or handed again after it
succeeded (``stream.redelivered``: Lambda processes a stream record at least once)."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nextbest.core.clock import ManualClock

from infra.local.emulator.account import ACCOUNT, REGION
from infra.local.emulator.faults import Crash, Faults
from infra.local.emulator.provisioning import Deployment
from infra.local.emulator.runtime import Function, LambdaRuntime

Requests = Callable[[str, str, str, int], None]
"""Told of a request made of moto's backend directly, by a part of the emulation that stands for AWS's own work:
(service, operation, target queue or topic, entries)."""


def uncounted(service: str, operation: str, target: str, entries: int) -> None:
    """Where requests go when nothing counts them (an event source tested alone)."""


@dataclass
class Mapping:
    function: Function
    queue_url: str
    queue_arn: str
    batch_size: int
    partial_failures: bool
    max_concurrency: int | None = None
    """``ScalingConfig.MaximumConcurrency``: invocations of this mapping at once, at most (None: Lambda's own
    scaling). The emulation invokes one batch at a time, so only a second worker (a fault) runs beside it."""
    running: int = 0
    held: list[dict[str, Any]] = field(default_factory=list)
    """Messages received but held back, to be delivered after later ones (out-of-order faults)."""


@dataclass
class StreamMapping:
    """A DynamoDB stream mapping: its shard's iterator after the last record read, and the records read but not
    yet handed successfully (the batch being gathered, or one that failed and comes again)."""

    function: Function
    stream_arn: str
    batch_size: int
    filters: list[dict[str, Any]]
    window: timedelta = timedelta(0)
    """``MaximumBatchingWindowInSeconds``: how long a batch gathers records after its first."""
    tumbling: timedelta | None = None
    """``TumblingWindowInSeconds``: a batch never holds records of two of these windows."""
    shard: str = ""
    read: int = 0
    """Records read from the shard so far (its iterator is after the last of them)."""
    pending: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    """Records that passed the filters, each with when the poller read it (on the emulated clock), oldest first."""

    def closes_at(self) -> datetime | None:
        """When the batch being gathered is handed: its first record's time plus the batching window (sooner when
        full or cut by its tumbling window, which :meth:`batch` sees)."""
        return self.pending[0][0] + self.window if self.pending else None

    def batch(self, now: datetime, close: bool) -> list[dict[str, Any]]:
        """The records to hand now (none while the window is open, unless ``close`` or the batch is full)."""
        if not self.pending:
            return []
        first = self.pending[0][0]
        taken = [r for at, r in self.pending[: self.batch_size] if self._tumble(at) == self._tumble(first)]
        cut = len(taken) < len(self.pending)  # full, or the next record opens another tumbling window
        return taken if close or cut or now >= first + self.window else []

    def _tumble(self, at: datetime) -> int:
        return int(at.timestamp() // self.tumbling.total_seconds()) if self.tumbling else 0


class EventSources:
    """The template's event-source mappings: SQS queues and the table's stream."""

    def __init__(
        self,
        deployment: Deployment,
        runtime: LambdaRuntime,
        faults: Faults | None = None,
        clock: ManualClock | None = None,
    ) -> None:
        self.deployment = deployment
        self.clock = clock or ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        """The emulated clock stream batches gather on (the emulation's; a stopped one for a mapping tested alone)."""
        self.runtime = runtime
        self.faults = faults
        self.mappings: list[Mapping] = []
        self.streams: list[StreamMapping] = []
        self.requests: Requests = uncounted
        """Told of each SQS request the queues' poller stands for: the emulation's metering counts them as the
        requests Lambda's poller makes."""

    def load(self) -> None:
        for _logical_id, props in self.deployment.of_type("AWS::Lambda::EventSourceMapping"):
            function = self.runtime.functions[props["FunctionName"]["Ref"]]
            queue_logical, attribute = props["EventSourceArn"]["Fn::GetAtt"]
            if attribute == "StreamArn":
                self.streams.append(self._stream(function, queue_logical, props))
                continue
            self.mappings.append(
                Mapping(
                    function,
                    self.deployment.physical[queue_logical],
                    self.deployment.arns[queue_logical],
                    min(int(props.get("BatchSize", 10)), 10),
                    "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    props.get("ScalingConfig", {}).get("MaximumConcurrency"),
                )
            )

    def _stream(self, function: Function, table_logical: str, props: dict[str, Any]) -> StreamMapping:
        arn = self.deployment.streams[table_logical]
        patterns = [json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])]
        tumbling = props.get("TumblingWindowInSeconds")
        return StreamMapping(
            function,
            arn,
            int(props.get("BatchSize", 100)),
            patterns,
            window=timedelta(seconds=int(props.get("MaximumBatchingWindowInSeconds", 0))),
            tumbling=timedelta(seconds=int(tumbling)) if tumbling else None,
        )

    def poll_all(self) -> int:
        """One poll of every queue's mapping; messages received."""
        return sum(self.poll(m) for m in self.mappings)

    def poll_streams(self, close: bool = False) -> int:
        """Read every stream mapping's new records and hand each batch whose window has closed on the emulated
        clock (every gathered batch when ``close``); records read plus batches handed (0: nothing moved)."""
        return sum(self.poll_stream(s, close) for s in self.streams)

    def next_window(self, until: datetime) -> datetime | None:
        """When the soonest batch being gathered is handed, if by ``until``."""
        times = [t for s in self.streams if (t := s.closes_at()) is not None and t <= until]
        return min(times) if times else None

    def poll_stream(self, mapping: StreamMapping, close: bool = False) -> int:
        """Read the shard's new records, keep those that pass the filters (Lambda filters before it batches), and
        hand the gathered batch when its window has closed (or ``close``); a batch that fails stays, to be handed
        again. Returns the records read plus the batches handed."""
        read = self._read(mapping)
        batch = mapping.batch(self.clock.now(), close)
        if not batch:
            return read
        if self._handled(mapping, batch):
            del mapping.pending[: len(batch)]
        return read + 1  # a batch was handed: when it failed, it comes again

    def _read(self, mapping: StreamMapping) -> int:
        """Every record the shard has that the mapping has not read, into the batch being gathered.

        This poller stands for Lambda's own, which AWS runs: it reads moto's shard directly rather than through
        ``GetRecords`` (a request per drain round with new records was a fifth of the demo's time), and each record
        becomes JSON as Lambda hands it to the function (:func:`stream_record`)."""
        shard = _shard(mapping.stream_arn)
        if shard is None:
            return 0  # the table, and its stream, are gone (a test deleted it): nothing to read
        mapping.shard = mapping.shard or shard.id
        records = [r.to_json() for r in shard.items[mapping.read :]]  # read-only: stream_record builds new JSON
        now = self.clock.now()
        passed = [r for r in records if any(matches(p, r) for p in mapping.filters)] if mapping.filters else records
        mapping.pending += [(now, r) for r in passed]
        mapping.read += len(records)
        return len(records)

    def _handled(self, mapping: StreamMapping, batch: list[dict[str, Any]]) -> bool:
        """Invoke the function on a batch of stream records, as a tumbling-window mapping does (the event names
        its shard); False if the invocation failed (the same batch comes again)."""
        event = {
            "Records": [stream_record(r, mapping.stream_arn) for r in batch],
            "shardId": mapping.shard,
            "eventSourceARN": mapping.stream_arn,
            "window": {},
            "state": {},
            "isFinalInvokeForWindow": False,
            "isWindowTerminatedEarly": False,
        }
        name = mapping.function.name
        plan = None
        if self.faults is not None:
            twin = functools.partial(self._stream_twin, mapping, event)
            plan = self.faults.plan(name, [json.dumps(r["dynamodb"]["Keys"]) for r in batch], twin)
        with self.faults.invocation(plan) if self.faults else contextlib.nullcontext():
            try:
                response = self.runtime.invoke(mapping.function, event) or {}
                if self.faults is not None:
                    self.faults.finish(plan)
            except (Exception, Crash) as error:
                print(f"{type(error).__name__}: {error}", file=mapping.function.log)
                return False
        if "state" not in response:
            return False  # Lambda treats a tumbling-window response without state as a failed invocation
        again = ("stream.redelivered",) if self.faults is not None and self.faults.enabled("stream.redelivered") else ()
        if self.faults is not None and self.faults.choose(again, name, "stream", "again"):
            self.faults.injected["stream.redelivered"] += 1
            return False  # processed, but handed again: Lambda processes a stream record at least once
        return True

    def visible(self, mapping: Mapping) -> int:
        """Visible messages in a queue, read from moto's model: a cheap look before an API poll."""
        return int(_sqs().queues[_queue_name(mapping)].approximate_number_of_messages)

    def poll(self, mapping: Mapping) -> int:
        """One event-source-mapping poll: receive a batch, invoke, settle. Returns messages received."""
        visible = self.visible(mapping)
        if visible and self.faults is not None:
            self._poison(mapping, self.faults)
        if not visible and not mapping.held:
            return 0
        messages = self._receive(mapping) if visible else []
        received = len(messages)
        messages, duplicates = self._out_of_order(mapping, messages)
        if messages:
            self._settle(mapping, messages, self._failed(mapping, messages), duplicates)
        return received + len(messages)

    def _poison(self, mapping: Mapping, faults: Faults) -> None:
        """Maybe put a poison message on the queue among the real ones, as a broken producer would."""
        if body := faults.poison_body(mapping.function.name, mapping.queue_url):
            self.deployment.client("sqs").send_message(QueueUrl=mapping.queue_url, MessageBody=body)

    def _out_of_order(self, mapping: Mapping, received: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
        """The batch to deliver now: what was received less what is held back, then what was held back at an
        earlier poll (so it arrives after messages sent later than it); and the ids to deliver again once
        processed (duplicates)."""
        if self.faults is None:
            return received, set()
        earlier, mapping.held = mapping.held, []
        batch: list[dict[str, Any]] = []
        duplicates: set[str] = set()
        for message in received:
            fault = self.faults.message_fault(mapping.function.name, message["MessageId"], message["Body"])
            if fault == "sqs.out_of_order":
                mapping.held.append(message)
                continue
            if fault == "sqs.duplicate":
                duplicates.add(message["MessageId"])
            batch.append(message)
        room = max(mapping.batch_size - len(batch), 0)
        mapping.held[:0] = earlier[room:]
        return batch + earlier[:room], duplicates

    def _failed(self, mapping: Mapping, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function on a batch: the ids of the messages that failed (all of them if it raised, or if
        it reported any failure without partial batch responses enabled)."""
        event = {"Records": [sqs_record(m, mapping.queue_arn) for m in messages]}
        plan = None
        if self.faults is not None:
            second = functools.partial(self._second_worker, mapping, messages, event)
            plan = self.faults.plan(mapping.function.name, [m["Body"] for m in messages], second)
        with self.faults.invocation(plan) if self.faults else contextlib.nullcontext(), _running(mapping):
            try:
                response = self.runtime.invoke(mapping.function, event) or {}
                if self.faults is not None:
                    self.faults.finish(plan)
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            except (Exception, Crash) as error:  # the whole batch failed, exactly as Lambda would report it
                print(f"{type(error).__name__}: {error}", file=mapping.function.log)
                failed = {m["MessageId"] for m in messages}
        if not mapping.partial_failures and failed:
            failed = {m["MessageId"] for m in messages}
        if self.faults is not None and failed:
            self.faults.failed(mapping.function.name, [m["Body"] for m in messages if m["MessageId"] in failed])
        return failed

    def _stream_twin(self, mapping: StreamMapping, event: dict[str, Any]) -> None:
        """A second invocation on the same batch while the first runs (Lambda retried it after a timeout)."""
        try:
            self.runtime.invoke(mapping.function, event, twin=True)
        except (Exception, Crash) as error:
            print(f"{type(error).__name__}: {error}", file=mapping.function.log)

    def _second_worker(self, mapping: Mapping, messages: list[dict[str, Any]], event: dict[str, Any]) -> None:
        """The batch's visibility expired while its worker runs: SQS hands it to another worker (another
        execution environment), which processes and settles it while the first goes on, if the mapping's maximum
        concurrency leaves room (else the poller waits, and the first worker settles the batch)."""
        if mapping.max_concurrency is not None and mapping.running >= mapping.max_concurrency:
            return
        try:
            with _running(mapping):
                response = self.runtime.invoke(mapping.function, event, twin=True) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except (Exception, Crash) as error:
            print(f"{type(error).__name__}: {error}", file=mapping.function.log)
            failed = {m["MessageId"] for m in messages}
        self._settle(mapping, messages, failed)

    def _settle(
        self, mapping: Mapping, messages: list[dict[str, Any]], failed: set[str], again: Set[str] = frozenset()
    ) -> None:
        """Delete what succeeded (but what ``again`` names: delivered a second time); make what failed visible
        again."""
        from moto.sqs.exceptions import ReceiptHandleIsInvalid

        sqs, queue = _sqs(), _queue_name(mapping)
        done = [m for m in messages if m["MessageId"] not in failed and m["MessageId"] not in again]
        for start in range(0, len(done), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:][:10])]
            sqs.delete_message_batch(queue, entries)
            self.requests("sqs", "DeleteMessageBatch", queue, len(entries))
        for m in messages:
            if m["MessageId"] in failed or m["MessageId"] in again:
                # Emulated time is compressed: the visibility timeout has "passed" by the next poll.
                self.requests("sqs", "ChangeMessageVisibility", queue, 1)
                with contextlib.suppress(ReceiptHandleIsInvalid):  # a second worker may have deleted it meanwhile
                    sqs.change_message_visibility(queue, m["ReceiptHandle"], 0)

    def _receive(self, mapping: Mapping) -> list[dict[str, Any]]:
        """A batch, as ``ReceiveMessage`` asking for every attribute returns it (Lambda's poller asks for them all).

        This poller stands for Lambda's own, which AWS runs: like the stream's, it asks moto's SQS backend directly,
        whose receive and deletes apply the queue's visibility timeout, receive counts and redrive to the dead-letter
        queue as the API's do, without a request each (the polls' requests were a sixth of the demo's time). Each
        still counts as the request it stands for (:attr:`requests`), for the benchmark's prices."""
        sqs, name = _sqs(), _queue_name(mapping)
        queue = sqs.get_queue(name)
        wait = int(queue.receive_message_wait_time_seconds or 0)  # as the API, when the request names none
        received = sqs.receive_message(name, mapping.batch_size, wait, int(queue.visibility_timeout), ["All"])
        self.requests("sqs", "ReceiveMessage", name, 1)
        return [_received(message) for message in received]


@contextlib.contextmanager
def _running(mapping: Mapping) -> Iterator[None]:
    """One invocation of the mapping under way."""
    mapping.running += 1
    try:
        yield
    finally:
        mapping.running -= 1


class Delays:
    """SQS message delays (``DelaySeconds``) on the emulated clock. moto counts a delay in real seconds; here a
    message sent with one stays delayed until the emulated clock reaches its time (:meth:`release`)."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.pending: list[tuple[datetime, str, str]] = []
        """(when, queue name, message id) of each message still delayed, soonest first."""

    def install(self, session: Any) -> None:
        """Watch every ``SendMessage`` of clients created from ``session`` from now on."""
        session.events.register("provide-client-params.sqs.SendMessage", self._sending)
        session.events.register("after-call.sqs.SendMessage", self._sent)

    def _sending(self, params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        if params.get("DelaySeconds"):
            context["emulated_delay"] = (int(params["DelaySeconds"]), params["QueueUrl"].rsplit("/", 1)[-1])

    def _sent(self, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        if "emulated_delay" not in context or "MessageId" not in parsed:
            return
        seconds, queue = context.pop("emulated_delay")
        self._message(queue, parsed["MessageId"]).delayed_until = float("inf")
        self.pending.append((self.clock.now() + timedelta(seconds=seconds), queue, parsed["MessageId"]))
        self.pending.sort()

    def next_due(self, until: datetime) -> datetime | None:
        """When the soonest delayed message becomes visible, if by ``until``."""
        return self.pending[0][0] if self.pending and self.pending[0][0] <= until else None

    def release(self, until: datetime) -> int:
        """Make visible every message whose delay ends by ``until``; how many."""
        due = [p for p in self.pending if p[0] <= until]
        self.pending = self.pending[len(due) :]
        for _, queue, message_id in due:
            if (message := self._message(queue, message_id)) is not None:  # else deleted meanwhile (a purge)
                message.delayed_until = 0
        return len(due)

    @staticmethod
    def _message(queue: str, message_id: str) -> Any:
        from moto.sqs.models import sqs_backends

        messages = sqs_backends[ACCOUNT][REGION].queues[queue]._messages
        return next((m for m in messages if m.id == message_id), None)


def stream_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A stream record as Lambda hands it to the function: JSON, dates as epoch seconds, and binary attributes
    (a profile's or a decision's compressed ``doc``) base64-encoded, as JSON carries bytes."""
    stream = {k: _as_json(v) if k in ("Keys", "NewImage", "OldImage") else v for k, v in record["dynamodb"].items()}
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = created.timestamp()
    return {**{k: v for k, v in record.items() if k != "dynamodb"}, "dynamodb": stream, "eventSourceARN": stream_arn}


def _as_json(value: Any) -> Any:
    """DynamoDB JSON with its binary values (``B``, ``BS``, inside maps and lists too) base64-encoded: the only
    bytes an image holds are binary attributes."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filtering, for the rules our filters use: a list of allowed values (or ``{"exists": …}``),
    objects matched key by key."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            _rule_matches(rule, value.get(key), key in value) for key, rule in pattern.items()
        )
    return bool(pattern == value)


def _rule_matches(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, list):
        for allowed in rule:
            if isinstance(allowed, dict) and "exists" in allowed:
                if allowed["exists"] == present:
                    return True
            elif present and allowed == value:
                return True
        return False
    return present and matches(rule, value)


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A message received from SQS as the record Lambda hands the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
            for k, v in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _sqs() -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT][REGION]


def _queue_name(mapping: Mapping) -> str:
    return mapping.queue_arn.rsplit(":", 1)[-1]


def _received(message: Any) -> dict[str, Any]:
    """A message moto's backend handed out, as ``ReceiveMessage`` returns it with every system and message attribute
    (moto's ``SQSResponse.receive_message``, through botocore's parser)."""
    attributes = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    optional = {
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "AWSTraceHeader": (message.system_attributes.get("AWSTraceHeader") or {}).get("StringValue"),
        "SequenceNumber": message.sequence_number,
    }
    found = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.body_md5,
        "Body": message.body,
        "Attributes": attributes | {k: v for k, v in optional.items() if v is not None},
    }
    if message.message_attributes:
        found["MessageAttributes"] = {
            name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in message.message_attributes.items()
        }
        found["MD5OfMessageAttributes"] = message.attribute_md5
    return found


def _shard(stream_arn: str) -> Any:
    """moto's shard of this stream (None if its table is gone)."""
    from moto.dynamodb.models import dynamodb_backends

    name = stream_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
    table = dynamodb_backends[ACCOUNT][REGION].tables.get(name)
    return getattr(table, "stream_shard", None)
