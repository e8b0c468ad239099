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


def test_a_profile_of_a_cookie_alone_expires_13_months_after_its_last_event_and_no_other_profile_does():
    from datetime import UTC, datetime, timedelta

    from nextbest.aws.store.table import profile_item
    from nextbest.core.profiles import Profile

    seen = datetime(2026, 11, 2, 9, tzinfo=UTC)
    cookie = Profile(key="a:ck", identifiers=["a:ck"], last_event_at=seen)
    assert int(profile_item(cookie)["expires_at"]["N"]) == int((seen + timedelta(days=395)).timestamp())
    linked = cookie.model_copy(update={"identifiers": ["a:ck", "a:ck2"]})  # a redirect leads to it: kept
    customer = Profile(key="c:1", identifiers=["c:1"], last_event_at=seen)
    assert "expires_at" not in profile_item(linked) and "expires_at" not in profile_item(customer)
