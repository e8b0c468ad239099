"""Reads that DynamoDB may answer in part: the store asks again for what it did not get."""

from nextbest.aws.store import Store


class PartialDynamo:
    """Answers the first BatchGetItem with one item and the other key unprocessed, as DynamoDB may."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def batch_get_item(self, RequestItems: dict) -> dict:
        self.calls.append(RequestItems)
        keys = RequestItems["t"]["Keys"]
        first, rest = keys[0], keys[1:]
        item = {**first, "sends": {"N": str(10 * len(self.calls))}, "conversions": {"N": "1"}}
        return {"Responses": {"t": [item]}, "UnprocessedKeys": {"t": {"Keys": rest}} if rest else {}}


def test_arm_counts_reads_the_variants_dynamodb_left_unprocessed():
    client = PartialDynamo()
    counts = Store("t", client=client).arm_counts("cart", ["a", "b"])
    assert counts == {"a": (10, 1), "b": (20, 1)} and len(client.calls) == 2
