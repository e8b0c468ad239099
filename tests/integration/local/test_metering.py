"""The emulation's metering bills real requests on the synthesized table by DynamoDB's rules: item images read from
moto before and after each write, transactions doubled, the sparse indexes written only when an item enters,
leaves or moves in them, reads by size and consistency. Calls made outside any function are the stage ``None``."""

from datetime import timedelta

import pytest
from nextbest.aws.store.table import profile_item
from nextbest.core.profiles import Consent, Profile

from tests.conftest import T0


def blob(pk: str, size: int) -> dict:
    """An item of exactly ``size`` bytes."""
    return {"pk": {"S": pk}, "sk": {"S": "X"}, "d": {"S": "x" * (size - 4 - len(pk) - 1)}}


@pytest.fixture
def table(emulation):
    return emulation.output("TableName")


def units(emulation) -> tuple[float, float, float]:
    usage = emulation.metering.usage[None]
    return usage.wru, usage.index_wru, usage.rru


def test_a_write_is_billed_on_the_larger_image_and_a_failed_condition_still_costs(emulation, table):
    ddb, before = emulation.client("dynamodb"), units(emulation)[0]
    ddb.put_item(TableName=table, Item=blob("k", 3000))
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "k"}, "sk": {"S": "X"}},
        UpdateExpression="SET d = :d",
        ExpressionAttributeValues={":d": {"S": "small"}},
    )
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item=blob("k", 1500), ConditionExpression="attribute_not_exists(pk)")
    assert units(emulation)[0] - before == 3 + 3 + 2
    assert [(w.key, w.units, w.applied) for w in emulation.metering.writes[-3:]] == [
        (("k", "X"), 3, True),
        (("k", "X"), 3, True),
        (("k", "X"), 2, False),
    ]


def test_a_transaction_bills_each_item_twice(emulation, table):
    ddb, before = emulation.client("dynamodb"), units(emulation)[0]
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": table, "Item": blob("a", 500)}},
            {"Put": {"TableName": table, "Item": blob("b", 1500)}},
        ]
    )
    assert units(emulation)[0] - before == 2 * 1 + 2 * 2


def test_a_profile_enters_the_due_index_once_and_moves_in_it_only_when_its_minute_does(emulation, table):
    ddb = emulation.client("dynamodb")
    due = T0 + timedelta(hours=1)
    mailable = {"email": "ann@example.org", "consent": {"email": Consent(granted=True, at=T0, source="test")}}
    cart = Profile(key="c:cus_1", triggers={"cart_abandoned": due}, **mailable)
    _, index_before, _ = units(emulation)
    ddb.put_item(TableName=table, Item=profile_item(cart))
    assert units(emulation)[1] - index_before == 1  # by_due, keys only
    moved = cart.model_copy(update={"version": 2, "triggers": {"cart_abandoned": due - timedelta(seconds=30)}})
    ddb.put_item(TableName=table, Item=profile_item(moved))
    assert units(emulation)[1] - index_before == 1  # the same minute: nothing the index holds changed
    later = cart.model_copy(update={"version": 3, "triggers": {"cart_abandoned": due + timedelta(minutes=30)}})
    ddb.put_item(TableName=table, Item=profile_item(later))
    assert units(emulation)[1] - index_before == 3  # another minute: its entry is deleted and put again
    ddb.put_item(TableName=table, Item=profile_item(later.model_copy(update={"version": 4, "triggers": {}})))
    assert units(emulation)[1] - index_before == 4  # nothing pending: it leaves the (sparse) index


def test_reads_are_billed_by_size_and_consistency(emulation, table):
    ddb = emulation.client("dynamodb")
    ddb.put_item(TableName=table, Item=blob("big", 5000))
    key = {"pk": {"S": "big"}, "sk": {"S": "X"}}
    before = units(emulation)[2]
    ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
    ddb.get_item(TableName=table, Key=key)  # eventually consistent: half
    ddb.get_item(TableName=table, Key=key, ConsistentRead=True, ProjectionExpression="pk")  # billed on the whole item
    ddb.get_item(TableName=table, Key={"pk": {"S": "none"}, "sk": {"S": "X"}}, ConsistentRead=True)  # missing: 1
    ddb.batch_get_item(
        RequestItems={table: {"Keys": [key, {"pk": {"S": "none"}, "sk": {"S": "X"}}], "ConsistentRead": True}}
    )
    assert units(emulation)[2] - before == 2 + 1 + 2 + 1 + (2 + 1)


def test_calls_are_counted_by_service_operation_and_target(emulation):
    sqs = emulation.client("sqs")
    url = next(m.queue_url for m in emulation.mappings if m.function.name == "deliver")
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    name = url.rsplit("/", 1)[-1]
    assert [n for c, n in emulation.metering.calls.items() if c[1:] == ("sqs", "SendMessage", name)] == [1]
    assert emulation.metering.errors == []
