"""EventBridge Scheduler's request quotas: a throttled arm is a Retry (the queue backs the record off),
any other error is not."""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from nextbest.aws.scheduler import Scheduler
from nextbest.core import clock
from nextbest.core.clock import ManualClock
from nextbest.core.commands import DueTrigger
from nextbest.core.ports import Retry

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
DUE = DueTrigger(profile_key="c:cus_1", trigger="cart_abandoned", due_at=NOW + timedelta(hours=1))


class Failing:
    """A Scheduler client whose every call fails with this error code (a fake, not a mock)."""

    def __init__(self, code: str) -> None:
        self.error = ClientError({"Error": {"Code": code}}, "CreateSchedule")

    def create_schedule(self, **kwargs):
        raise self.error


@pytest.fixture(autouse=True)
def frozen():
    clock.install(ManualClock(NOW))
    yield
    clock.reset()


def scheduler(code: str) -> Scheduler:
    return Scheduler("nextbest", "arn:aws:sqs:us-east-1:1:due", "arn:aws:iam::1:role/s", client=Failing(code))


def test_a_throttled_arm_is_a_retry():
    with pytest.raises(Retry):
        scheduler("ThrottlingException").arm(DUE)


def test_any_other_error_is_not_a_retry():
    with pytest.raises(ClientError):
        scheduler("ValidationException").arm(DUE)
