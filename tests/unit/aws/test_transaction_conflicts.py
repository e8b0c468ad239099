"""DynamoDB cancels a transaction when another request is writing one of its items (TransactionConflict), and
botocore does not retry a cancellation: the store does, so a status move with the profile that logs it (a released
message) is not lost."""

import pytest
from botocore.exceptions import ClientError
from nextbest.aws.store import Store
from nextbest.aws.store.table import TRANSACTION_ATTEMPTS
from nextbest.core.profiles import Profile


def cancelled(*reasons: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": r} for r in reasons],
        },
        "TransactWriteItems",
    )


class Conflicting:
    """A DynamoDB client whose first ``conflicts`` transactions are cancelled by a concurrent write."""

    def __init__(self, conflicts: int, then: ClientError | None = None) -> None:
        self.conflicts = conflicts
        self.then = then
        self.calls = 0

    def transact_write_items(self, TransactItems):
        self.calls += 1
        if self.calls <= self.conflicts:
            raise cancelled("None", "TransactionConflict")
        if self.then is not None:
            raise self.then


PROFILE = Profile(key="c:1", identifiers=["c:1"], version=3)


def test_a_status_move_cancelled_by_a_concurrent_write_is_tried_again_and_lands():
    client = Conflicting(conflicts=2)

    assert Store("t", client=client).move_decision("d-1", "waiting", "queued", profile=PROFILE)

    assert client.calls == 3


def test_a_conflict_that_outlasts_the_attempts_is_raised_not_taken_for_a_failed_condition():
    client = Conflicting(conflicts=TRANSACTION_ATTEMPTS)

    with pytest.raises(ClientError):
        Store("t", client=client).move_decision("d-1", "waiting", "queued", profile=PROFILE)
    assert client.calls == TRANSACTION_ATTEMPTS


def test_a_failed_condition_is_not_retried():
    client = Conflicting(conflicts=0, then=cancelled("ConditionalCheckFailed", "None"))

    assert not Store("t", client=client).move_decision("d-1", "waiting", "queued", profile=PROFILE)
    assert client.calls == 1


class BusyItem:
    """A DynamoDB client whose first single write meets a transaction in progress on the same item."""

    def __init__(self) -> None:
        self.calls = 0

    def update_item(self, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise ClientError({"Error": {"Code": "TransactionConflictException"}}, "UpdateItem")


def test_a_single_write_that_met_a_transaction_on_its_item_is_tried_again():
    client = BusyItem()

    assert Store("t", client=client).move_decision("d-1", "queued", "sending")

    assert client.calls == 2
