"""The fault injector injects what it says, through a real boto3 client (the functions' configuration, botocore's
real retries) against moto; and the event sources misbehave as it tells them to."""

from __future__ import annotations

import types
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from infra.local.emulator.event_sources import EventSources, Mapping
from infra.local.emulator.faults import Faults

CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
"""As ``nextbest.aws.clients``: four attempts in all."""


class Runtime:
    """A function "running" (faults are injected only into requests a function makes), recording invocations."""

    def __init__(self) -> None:
        self.current: Any = types.SimpleNamespace(name="deliver")
        self.invoked: list[tuple[list[str], bool]] = []
        self.then: Any = None

    def invoke(self, function: Any, event: dict[str, Any], twin: bool = False) -> dict[str, Any]:
        self.invoked.append(([r["body"] for r in event["Records"]], twin))
        if self.then is not None and not twin:
            self.then()
        return {"batchItemFailures": []}


def injected(kinds: set[str], rate: float = 1.0, seed: int = 7) -> tuple[boto3.Session, Faults, Runtime]:
    session, runtime = boto3.Session(region_name="us-east-1"), Runtime()
    faults = Faults(rate=rate, seed=seed, kinds=frozenset(kinds))
    faults.install(session, runtime)  # type: ignore[arg-type]
    return session, faults, runtime


@pytest.fixture
def table(aws):
    boto3.client("dynamodb").create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    yield "t"


def _items() -> list[str]:
    return sorted(i["pk"]["S"] for i in boto3.client("dynamodb").scan(TableName="t")["Items"])


def test_throttling_at_rate_one_is_retried_by_botocore_then_raised_and_nothing_is_written(table):
    session, faults, _ = injected({"dynamodb.throttle"})
    try:
        with pytest.raises(ClientError) as error:
            session.client("dynamodb", config=CONFIG).put_item(TableName=table, Item={"pk": {"S": "a"}})
    finally:
        faults.uninstall()
    assert error.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert error.value.response["ResponseMetadata"]["RetryAttempts"] == 3  # botocore's own retries ran
    assert faults.injected == {"dynamodb.throttle": 4} and faults.retry_sleep_s > 0  # slept in emulated time only
    assert _items() == []


def test_a_timeout_after_the_write_leaves_the_write_in_moto(table):
    session, faults, _ = injected({"dynamodb.timeout_after_write"})
    try:
        with pytest.raises(ReadTimeoutError):
            session.client("dynamodb", config=CONFIG).put_item(TableName=table, Item={"pk": {"S": "a"}})
    finally:
        faults.uninstall()
    assert _items() == ["a"]  # the caller cannot know it: every attempt "timed out"


def test_a_cancelled_transaction_names_the_conflict_and_writes_nothing(table):
    session, faults, _ = injected({"dynamodb.transaction_conflict"})
    items = [{"Put": {"TableName": table, "Item": {"pk": {"S": k}}}} for k in ("a", "b")]
    try:
        with pytest.raises(ClientError) as error:
            session.client("dynamodb", config=CONFIG).transact_write_items(TransactItems=items)
    finally:
        faults.uninstall()
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in error.value.response["CancellationReasons"]] == ["TransactionConflict", "None"]
    assert _items() == []


def test_an_sms_failing_after_it_went_out_is_sent_again_by_botocore(aws):
    # Given SNS answering 500 after every text it sent
    session, faults, _ = injected({"sns.5xx_after_send"})
    from moto.sns.models import sns_backends

    try:
        with pytest.raises(ClientError) as error:
            session.client("sns", config=CONFIG).publish(PhoneNumber="+14155550100", Message="hello")
    finally:
        faults.uninstall()
    # Then the caller sees the error, and moto recorded the text once per attempt
    assert error.value.response["Error"]["Code"] == "InternalError"
    assert len(sns_backends["123456789012"]["us-east-1"].sms_messages) == 4


def test_only_requests_made_by_a_function_draw_faults_and_draws_are_reproducible(table):
    session, faults, runtime = injected({"dynamodb.throttle"}, rate=0.5, seed=3)
    ddb = session.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 0}))
    runtime.current = None
    ddb.put_item(TableName=table, Item={"pk": {"S": "outside"}})  # the emulation's own requests: never
    assert not faults.injected
    outcomes = []
    runtime.current = types.SimpleNamespace(name="ingest")
    for n in range(12):
        try:
            ddb.get_item(TableName=table, Key={"pk": {"S": str(n)}})
            outcomes.append(0)
        except ClientError:
            outcomes.append(1)
    faults.uninstall()
    again = Faults(rate=0.5, seed=3, kinds=frozenset({"dynamodb.throttle"}))
    assert outcomes == [int(again.choose(("x",), "ingest", "dynamodb", "GetItem") is not None) for _ in range(12)]
    assert 0 < sum(outcomes) < 12


def _mapping_on_a_queue(faults: Faults, runtime: Runtime) -> tuple[EventSources, Mapping, Any]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    deployment = types.SimpleNamespace(client=lambda service: sqs)
    sources = EventSources(deployment, runtime, faults)  # type: ignore[arg-type]
    function = types.SimpleNamespace(name="deliver", log=None)
    mapping = Mapping(function, url, "arn:aws:sqs:us-east-1:123456789012:work", 10, True)  # type: ignore[arg-type]
    return sources, mapping, sqs


def _drain(sources: EventSources, mapping: Mapping) -> None:
    while sources.poll(mapping):
        pass


def test_duplicates_deliver_each_message_a_second_time_once(aws):
    runtime = Runtime()
    sources, mapping, sqs = _mapping_on_a_queue(Faults(rate=1.0, kinds=frozenset({"sqs.duplicate"})), runtime)
    for body in ("1", "2"):
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=body)
    _drain(sources, mapping)
    assert sorted(b for bodies, _ in runtime.invoked for b in bodies) == ["1", "1", "2", "2"]


def test_a_second_worker_gets_the_batch_while_the_first_runs(aws):
    runtime = Runtime()
    sources, mapping, sqs = _mapping_on_a_queue(Faults(rate=1.0, kinds=frozenset({"sqs.second_worker"})), runtime)
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="1")
    _drain(sources, mapping)
    # Planned at the worker's k-th AWS call, or at its end when it makes fewer: a twin worker, same batch
    assert runtime.invoked == [(["1"], False), (["1"], True)]


def test_a_crash_fails_the_whole_batch_which_comes_back(aws):
    runtime = Runtime()
    faults = Faults(rate=1.0, kinds=frozenset({"sqs.crash"}))
    sources, mapping, sqs = _mapping_on_a_queue(faults, runtime)
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="1")
    sources.poll(mapping)  # the worker crashes
    faults.rate = 0.0
    _drain(sources, mapping)  # SQS delivers the batch again
    assert runtime.invoked == [(["1"], False), (["1"], False)]
    assert sources.visible(mapping) == 0


def test_held_back_messages_arrive_after_later_ones(aws):
    runtime = Runtime()
    faults = Faults(rate=1.0, kinds=frozenset({"sqs.out_of_order"}))
    sources, mapping, sqs = _mapping_on_a_queue(faults, runtime)
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="early")
    sources.poll(mapping)  # received, held back
    faults.rate = 0.0
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="late")
    _drain(sources, mapping)
    assert runtime.invoked == [(["late", "early"], False)]
