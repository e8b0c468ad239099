"""The emulation's moto speedups must not change what DynamoDB transactions do."""

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local import moto_speedups


@pytest.fixture
def table(aws):
    moto_speedups.install()
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
    )
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"N": "1"}})
    return ddb


def _put(pk, value, condition=None):
    put = {"TableName": "t", "Item": {"pk": {"S": pk}, "sk": {"S": "1"}, "v": {"N": str(value)}}}
    if condition:
        put["ConditionExpression"] = condition
    return {"Put": put}


def test_given_a_failing_condition_when_a_transaction_runs_then_no_write_of_it_remains(table):
    with pytest.raises(ClientError) as error:
        table.transact_write_items(
            TransactItems=[_put("a", 2), _put("b", 3), _put("c", 4, condition="attribute_exists(pk)")]
        )
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = {i["pk"]["S"]: i["v"]["N"] for i in table.scan(TableName="t")["Items"]}
    assert items == {"a": "1"}


def test_given_conditions_that_hold_when_a_transaction_runs_then_all_writes_land(table):
    guarded = _put("a", 2, condition="v = :one")
    guarded["Put"]["ExpressionAttributeValues"] = {":one": {"N": "1"}}
    table.transact_write_items(TransactItems=[guarded, _put("b", 3)])
    items = {i["pk"]["S"]: i["v"]["N"] for i in table.scan(TableName="t")["Items"]}
    assert items == {"a": "2", "b": "3"}


@pytest.fixture
def indexed(aws):
    moto_speedups.install()
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="i",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "s", "at")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_at",
                "KeySchema": [{"AttributeName": "s", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    return ddb


def _due(ddb, shard="0") -> list[str]:
    found = ddb.query(
        TableName="i",
        IndexName="by_at",
        KeyConditionExpression="s = :s AND #at BETWEEN :a AND :b",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":s": {"S": shard}, ":a": {"S": "10"}, ":b": {"S": "20"}},
    )
    return [item["pk"]["S"] for item in found["Items"]]


def _item(pk, at=None, shard="0"):
    item = {"pk": {"S": pk}, "sk": {"S": "P"}}
    return item | ({"s": {"S": shard}, "at": {"S": at}} if at else {})


def test_given_writes_of_every_kind_then_a_query_on_a_global_index_sees_exactly_the_items_carrying_its_keys(indexed):
    for pk, at in (("a", "12"), ("b", "15"), ("c", None), ("d", "30"), ("e", "11")):
        indexed.put_item(TableName="i", Item=_item(pk, at))
    assert _due(indexed) == ["e", "a", "b"]  # in index order

    indexed.update_item(  # leaves the index
        TableName="i", Key=_item("a"), UpdateExpression="REMOVE s, #at", ExpressionAttributeNames={"#at": "at"}
    )
    indexed.update_item(  # enters it
        TableName="i",
        Key=_item("c"),
        UpdateExpression="SET s = :s, #at = :at",
        ExpressionAttributeNames={"#at": "at"},
        ExpressionAttributeValues={":s": {"S": "0"}, ":at": {"S": "13"}},
    )
    indexed.put_item(TableName="i", Item=_item("d", "14"))  # moves into the window
    indexed.delete_item(TableName="i", Key=_item("e"))
    with pytest.raises(ClientError):  # cancelled: b stays where it is
        indexed.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "i", "Item": _item("b", "40")}},
                {"Put": {"TableName": "i", "Item": _item("z"), "ConditionExpression": "attribute_exists(pk)"}},
            ]
        )

    assert _due(indexed) == ["c", "d", "b"]
    assert _due(indexed, shard="1") == []


def test_given_many_partitions_then_a_query_of_the_base_table_returns_one_partition_in_range_order_and_pages(table):
    for pk in ("a", "b", "c"):
        for sk in ("3", "1", "2", "4"):
            table.put_item(TableName="t", Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": sk}})

    def page(**extra):
        return table.query(
            TableName="t",
            KeyConditionExpression="pk = :p AND sk > :s",
            ExpressionAttributeValues={":p": {"S": "b"}, ":s": {"S": "1"}},
            **extra,
        )

    assert [i["sk"]["S"] for i in page()["Items"]] == ["2", "3", "4"]
    assert [i["sk"]["S"] for i in page(ScanIndexForward=False)["Items"]] == ["4", "3", "2"]
    first = page(Limit=2)
    rest = page(Limit=2, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert [i["sk"]["S"] for i in first["Items"] + rest["Items"]] == ["2", "3", "4"]
    assert {i["pk"]["S"] for i in first["Items"] + rest["Items"]} == {"b"}
    missing = table.query(
        TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "zz"}}
    )
    assert missing["Items"] == []


def test_given_items_of_every_attribute_type_then_responses_are_serialized_as_moto_does_without_the_speedup(
    table, monkeypatch
):
    from moto.core.serialize import JSONSerializer, ResponseSerializer

    every_type = {
        "pk": {"S": "z"},
        "sk": {"S": "1"},
        "n": {"N": "1.5"},
        "b": {"B": b"\x00\x01zip"},
        "ss": {"SS": ["x", "y"]},
        "ns": {"NS": ["1", "2"]},
        "bs": {"BS": [b"a", b"b"]},
        "m": {"M": {"inner": {"L": [{"S": "deep"}, {"NULL": True}, {"BOOL": False}, {"M": {}}]}}},
        "l": {"L": []},
    }
    table.put_item(TableName="t", Item=every_type)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="{}")
    key = {"pk": {"S": "z"}, "sk": {"S": "1"}}
    reads = [
        lambda: table.get_item(TableName="t", Key=key),
        lambda: table.batch_get_item(RequestItems={"t": {"Keys": [key, {"pk": {"S": "a"}, "sk": {"S": "1"}}]}}),
        lambda: table.query(
            TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": key["pk"]}
        ),
        lambda: table.scan(TableName="t", ReturnConsumedCapacity="INDEXES"),
        lambda: table.describe_table(TableName="t"),
        lambda: sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"]),
        lambda: sqs.list_queues(),
    ]
    fast = [_without_metadata(read()) for read in reads]
    monkeypatch.setattr(ResponseSerializer, "get_value", ResponseSerializer.get_value.__wrapped__)
    monkeypatch.delattr(JSONSerializer, "_serialize_type_structure")  # inherited again from moto's JSON serializer
    assert fast == [_without_metadata(read()) for read in reads]
    assert fast[0]["Item"]["b"]["B"] == b"\x00\x01zip" and fast[0]["Item"]["m"]["M"]["inner"]["L"][1] == {"NULL": True}


def _without_metadata(response):
    """A response less what differs between two identical requests (its request id, its date)."""
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def test_given_one_update_and_one_condition_expression_used_again_then_each_use_evaluates_afresh(table):
    import pickle

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    expression = "SET #s = :s ADD n :one REMOVE v"
    tree = pickle.dumps(UpdateExpressionParser.make(expression))

    def update(pk, status, condition="attribute_not_exists(n) OR n < :max"):
        table.update_item(
            TableName="t",
            Key={"pk": {"S": pk}, "sk": {"S": "1"}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":one": {"N": "1"}, ":max": {"N": "2"}},
        )

    update("a", "sent")
    update("a", "opened")
    update("b", "queued")  # an item the update creates
    with pytest.raises(ClientError) as error:
        update("a", "clicked")  # n is 2 now: the same condition fails
    assert error.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    items = {i["pk"]["S"]: i for i in table.scan(TableName="t")["Items"]}
    assert {k: (i["status"]["S"], i["n"]["N"], "v" in i) for k, i in items.items()} == {
        "a": ("opened", "2", False),
        "b": ("queued", "1", False),
    }
    assert pickle.dumps(UpdateExpressionParser.make(expression)) == tree  # applying it changed no shared tree


def test_moto_clock_reads_the_same_as_without_the_speedup():
    from datetime import datetime

    from moto.core import utils

    moto_speedups.install()
    times = [datetime(2026, 11, 2, 9, 0, 0, 123456), datetime(1999, 12, 31, 23, 59, 59, 999999), datetime(1970, 1, 1)]
    for function in (utils.unix_time, utils.unix_time_millis):
        assert [function(t) for t in times] == [function.__wrapped__(t) for t in times]
    assert [utils.utcfromtimestamp(s) for s in (0, 1_790_000_000)] == [
        utils.utcfromtimestamp.__wrapped__(s) for s in (0, 1_790_000_000)
    ]
    assert abs(utils.unix_time() - utils.unix_time.__wrapped__()) < 1 and utils.utcnow().tzinfo is None


def test_given_visible_delayed_and_received_messages_then_a_queue_counts_them_as_its_messages_say(aws):
    from moto.sqs.models import sqs_backends

    moto_speedups.install()
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(6):
        sqs.send_message(QueueUrl=url, MessageBody=str(n), DelaySeconds=600 if n < 2 else 0)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=600)
    queue = sqs_backends["123456789012"]["us-east-1"].queues["q"]
    messages = queue._messages  # each message's own properties read the clock themselves

    assert [m.body for m in queue.messages] == [m.body for m in messages if m.visible and not m.delayed]
    assert len(queue.messages) == 1
    assert queue.approximate_number_of_messages_delayed == sum(m.delayed for m in messages) == 2
    assert queue.approximate_number_of_messages_not_visible == sum(not m.visible for m in messages) == 3


def test_requests_of_every_attribute_type_are_parsed_as_moto_does_without_the_speedup(monkeypatch):
    import json

    import botocore.session
    from moto.core import parse

    moto_speedups.install()
    model = botocore.session.get_session().get_service_model("dynamodb")
    item = {
        "pk": {"S": "z"},
        "b": {"B": "AAF6aXA="},
        "ns": {"NS": ["1", "2"]},
        "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}, {"M": {}}]}}},
    }
    requests = {
        "PutItem": {"TableName": "t", "Item": item, "ConditionExpression": "attribute_not_exists(pk)"},
        "TransactWriteItems": {
            "TransactItems": [{"Put": {"TableName": "t", "Item": item}}, {"Delete": {"TableName": "t", "Key": item}}]
        },
        "Query": {"TableName": "t", "KeyConditionExpression": "k = :p", "ExpressionAttributeValues": {":p": item["m"]}},
    }

    def parsed() -> list:
        return [
            parse.JSONParser(model.operation_model(name)).parse({"body": json.dumps(body).encode()})  # type: ignore
            for name, body in requests.items()
        ]

    fast = parsed()
    monkeypatch.setattr(parse.BaseJSONParser, "_parse_structure", parse.BaseJSONParser._parse_structure.__wrapped__)
    assert repr(fast) == repr(parsed())  # the same members, in the same order
    assert fast[0]["Item"]["b"] == {"B": b"\x00\x01zip"}


def test_given_an_update_that_passed_its_checks_then_the_same_expression_with_other_names_is_checked_again(table):
    def update(names, expression="SET #a = :x, #b = :y"):
        table.update_item(
            TableName="t",
            Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":x": {"S": "x"}, ":y": {"S": "y"}},
        )

    update({"#a": "p", "#b": "q"})
    update({"#a": "p", "#b": "q"})  # checked before: the same answer
    for names in ({"#a": "p", "#b": "p"}, {"#a": "sk", "#b": "q"}):  # overlapping paths; a key attribute
        with pytest.raises(ClientError) as error:
            update(names)
        assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError):
        update({"#a": "p", "#b": "q"}, "SET #a = :x SET #b = :y")  # two SET clauses
    item = table.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "1"}})["Item"]
    assert (item["p"]["S"], item["q"]["S"]) == ("x", "y")


def test_user_agent_headers_are_the_ones_botocore_builds_without_the_speedup(table, monkeypatch):
    from botocore.config import Config
    from botocore.useragent import UserAgentString

    def headers() -> list[str]:
        client = boto3.client("dynamodb", config=Config(retries={"mode": "standard"}, user_agent_appid="nb"))
        seen: list[str] = []
        agent = lambda request, **_: seen.append(request.headers["User-Agent"])  # noqa: E731
        client.meta.events.register_first("before-send", agent)
        client.describe_table(TableName="t")
        list(client.get_paginator("scan").paginate(TableName="t"))  # a paginated call is a feature of its own
        client.describe_table(TableName="t")
        return seen

    fast = headers()
    monkeypatch.setattr(UserAgentString, "to_string", UserAgentString.to_string.__wrapped__)
    assert fast == headers()
    assert fast[0] == fast[2] != fast[1]
