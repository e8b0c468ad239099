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
