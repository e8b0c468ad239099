"""Issue 14, cost: a decision that sends nothing is written as its record, then its profile (two single writes, not
a transaction billing both twice). Whatever cuts between the two (a crash, a concurrent event, the record's answer
lost), the retry finishes the profile from the record: one record, the trigger handled, nothing sent."""

from datetime import timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from nextbest.aws import clients
from nextbest.core.commands import DueProfile
from nextbest.core.events import CartUpdated, LineItem
from nextbest.ingest.service import ingest

from tests.builders import DELAYS, DUE, Collect, decider, table_store
from tests.conftest import T0

KEY = "c:cus_1"
ITEM = LineItem(product_id="sku-1", name="Serum", quantity=1, unit_price=Decimal("32.00"))


class ProfileWriteFails:
    """The first UpdateItem of a profile fails: with a crash of the function, or the condition a concurrent write
    broke (its ``concurrent`` write lands first)."""

    def __init__(self, store, crash: bool) -> None:
        self.store, self.crash, self.failed = store, crash, 0
        clients.reset()
        boto3._get_default_session()._session.register("before-parameter-build.dynamodb.UpdateItem", self.fail)

    def fail(self, params, **kwargs):
        if self.failed or params["Key"]["pk"]["S"] != KEY:
            return None
        self.failed += 1
        if self.crash:
            raise RuntimeError("the function was stopped")
        error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}
        raise ClientError(error, "UpdateItem")

    def remove(self) -> None:
        boto3._get_default_session()._session.unregister("before-parameter-build.dynamodb.UpdateItem", self.fail)
        clients.reset()


def a_cart_nobody_may_be_sent(store) -> None:
    """A customer who gave no consent leaves a cart: decide, handed the profile, decides to send nothing."""
    ingest(store, "cart.updated", CartUpdated(event_id="c", occurred_at=T0, customer_id="cus_1", items=[ITEM]), DELAYS)
    assert store.profile(KEY).triggers == {"cart_abandoned": DUE}


def decide_until_done(store, now):
    for _ in range(3):  # the queue hands the message again after a crash
        try:
            return decider(store, Collect()).due(DueProfile(profile_key=KEY), now)
        except RuntimeError:
            continue
    raise AssertionError("never finished")


def records(store) -> list[str]:
    ddb = store.client
    items = ddb.scan(TableName=store.table)["Items"]
    return [i["pk"]["S"] for i in items if i["sk"]["S"] == "DECISION"]


@pytest.mark.parametrize("crash", [True, False], ids=["crash", "concurrent_write"])
def test_a_decision_recorded_without_its_profile_is_completed_by_the_retry_once(emulation, crash):
    store = table_store(emulation)
    a_cart_nobody_may_be_sent(store)
    emulation.clock.set(DUE + timedelta(minutes=2))
    fault = ProfileWriteFails(store, crash)
    try:
        decide_until_done(store, emulation.clock.now())
    finally:
        fault.remove()

    assert fault.failed == 1
    [record] = records(store)
    stored = store.decision(record.removeprefix("d:"))
    assert stored.status == "no_action" and stored.decision.action == "none"
    profile = store.profile(KEY)
    assert "cart_abandoned" not in profile.triggers and profile.handled["cart_abandoned"] == DUE
    assert profile.messages == []


def test_a_record_whose_answer_was_lost_is_not_written_twice_and_its_profile_is_written(emulation, response_lost):
    store = table_store(emulation)
    a_cart_nobody_may_be_sent(store)
    emulation.clock.set(DUE + timedelta(minutes=2))
    lost = response_lost("dynamodb", "PutItem")  # the record is written; botocore retries into its condition
    decide_until_done(store, emulation.clock.now())

    assert lost.attempts >= 2 and len(records(store)) == 1
    assert "cart_abandoned" not in store.profile(KEY).triggers
