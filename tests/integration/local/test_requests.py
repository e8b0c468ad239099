"""What the emulation's requests carry (moto checks no signature, so none is computed), and what the queues' poller,
which asks moto's SQS backend directly, hands the functions."""

import types

import boto3
from moto.dynamodb.models import dynamodb_backends

from infra.local.emulator import ACCOUNT, REGION, sqs_record
from infra.local.emulator.event_sources import EventSources, Mapping


def test_given_the_emulation_when_a_client_makes_a_request_then_it_goes_unsigned_to_the_emulations_account(emulation):
    ddb = emulation.client("dynamodb")
    sent = []
    ddb.meta.events.register_first("before-send.dynamodb.PutItem", lambda request, **_: sent.append(request.headers))
    table = emulation.output("TableName")

    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}, "sk": {"S": "X"}})

    assert "Authorization" not in sent[0]
    stored = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    assert [i.hash_key.value for i in stored.all_items()] == ["k"]


def test_given_a_message_then_the_queues_poller_hands_the_record_a_receive_through_the_api_would_and_counts_it(aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"
    attributes = {
        "reason": {"DataType": "String", "StringValue": "bad"},
        "n": {"DataType": "Number", "StringValue": "7"},
    }
    sqs.send_message(QueueUrl=url, MessageBody='{"a": 1}', MessageAttributes=attributes)
    [through_api] = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=through_api["ReceiptHandle"], VisibilityTimeout=0)
    handed, requests = [], []
    runtime = types.SimpleNamespace(invoke=lambda function, event: handed.extend(event["Records"]) or {})
    sources = EventSources(types.SimpleNamespace(), runtime)  # type: ignore[arg-type]
    sources.requests = lambda *request: requests.append(request)
    function = types.SimpleNamespace(name="ingest", log=None)

    sources.poll(Mapping(function, url, arn, 10, True))  # type: ignore[arg-type]

    [record] = handed
    expected = sqs_record(through_api, arn)
    assert record["attributes"].pop("ApproximateReceiveCount") == "2"  # the second receive of the message
    assert expected["attributes"].pop("ApproximateReceiveCount") == "1"
    assert {**record, "receiptHandle": ""} == {**expected, "receiptHandle": ""}
    assert record["messageAttributes"]["reason"] == {"stringValue": "bad", "dataType": "String"}
    assert requests == [("sqs", "ReceiveMessage", "work", 1), ("sqs", "DeleteMessageBatch", "work", 1)]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # deleted once handled
