"""Event-source mappings: each mapped queue polled in batches, its function invoked, what succeeded deleted,
and reported failures made visible again, so SQS's own redrive moves them to the DLQ after
``maxReceiveCount``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.local.emulator.account import ACCOUNT, REGION
from infra.local.emulator.provisioning import Deployment
from infra.local.emulator.runtime import Function, LambdaRuntime


@dataclass
class Mapping:
    function: Function
    queue_url: str
    queue_arn: str
    batch_size: int
    partial_failures: bool


class EventSources:
    """The template's SQS event-source mappings."""

    def __init__(self, deployment: Deployment, runtime: LambdaRuntime) -> None:
        self.deployment = deployment
        self.runtime = runtime
        self.mappings: list[Mapping] = []

    def load(self) -> None:
        for _logical_id, props in self.deployment.of_type("AWS::Lambda::EventSourceMapping"):
            function = self.runtime.functions[props["FunctionName"]["Ref"]]
            queue_logical = props["EventSourceArn"]["Fn::GetAtt"][0]
            self.mappings.append(
                Mapping(
                    function,
                    self.deployment.physical[queue_logical],
                    self.deployment.arns[queue_logical],
                    min(int(props.get("BatchSize", 10)), 10),
                    "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )

    def poll_all(self) -> int:
        """One poll of every mapping; messages received."""
        return sum(self.poll(m) for m in self.mappings)

    def visible(self, mapping: Mapping) -> int:
        """Visible messages in a queue, read from moto's model: a cheap look before an API poll."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends[ACCOUNT][REGION].queues[mapping.queue_arn.rsplit(":", 1)[-1]]
        return int(queue.approximate_number_of_messages)

    def poll(self, mapping: Mapping) -> int:
        """One event-source-mapping poll: receive a batch, invoke, settle. Returns messages received."""
        if not self.visible(mapping):
            return 0
        messages = (
            self.deployment.client("sqs")
            .receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=mapping.batch_size,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            .get("Messages", [])
        )
        if messages:
            self._settle(mapping, messages, self._failed(mapping, messages))
        return len(messages)

    def _failed(self, mapping: Mapping, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the function on a batch: the ids of the messages that failed (all of them if it raised, or if
        it reported any failure without partial batch responses enabled)."""
        event = {"Records": [sqs_record(m, mapping.queue_arn) for m in messages]}
        try:
            response = self.runtime.invoke(mapping.function, event) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception as error:  # the whole batch failed, exactly as Lambda would report it
            print(f"{type(error).__name__}: {error}", file=mapping.function.log)
            failed = {m["MessageId"] for m in messages}
        if not mapping.partial_failures and failed:
            failed = {m["MessageId"] for m in messages}
        return failed

    def _settle(self, mapping: Mapping, messages: list[dict[str, Any]], failed: set[str]) -> None:
        """Delete what succeeded; make what failed visible again."""
        sqs = self.deployment.client("sqs")
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        for m in messages:
            if m["MessageId"] in failed:
                # Emulated time is compressed: the visibility timeout has "passed" by the next poll.
                sqs.change_message_visibility(
                    QueueUrl=mapping.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )


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
