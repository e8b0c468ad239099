"""What quiet hours defer, as EventBridge Scheduler one-time schedules.

Triggers are found by the due index's poll (``nextbest.core.due``), not by one schedule each. What is left for
Scheduler is rare: a decision deferred to the customer's morning rings as a :class:`DueTrigger`, a waiting
decision quiet hours hold back as a :class:`Release`. Re-arming moves the same schedule; one whose reason vanished
finds nothing to decide when it fires: the profile in DynamoDB stays the source of truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.core import clock
from nextbest.core.commands import MAX_LATENESS, DueTrigger, Release
from nextbest.core.ports import Retry


def schedule_name(profile_key: str, trigger: str) -> str:
    """Scheduler names allow ``[0-9a-zA-Z-_.]``, 64 at most; identity keys may hold e-mail addresses."""
    return f"{trigger[:23]}-{hashlib.sha256(f'{profile_key}|{trigger}'.encode()).hexdigest()[:40]}"


class Scheduler:
    def __init__(self, group: str, queue_arn: str, role_arn: str, client: Any = None) -> None:
        self.group = group
        self.queue_arn = queue_arn
        self.role_arn = role_arn
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("scheduler")

    def arm(self, command: DueTrigger | Release, at: datetime | None = None) -> None:
        """Ring at ``due.due_at`` (or later, ``at``: quiet hours defer a decision but keep its due time); a
        waiting decision's :class:`Release` rings at ``at`` (when quiet hours end).

        A trigger already due rings a minute from now (a schedule in the past might never fire); one due
        longer ago than ``MAX_LATENESS`` (history loaded in bulk) is not armed at all: decide would refuse it.
        """
        now = clock.now()
        if isinstance(command, Release):
            assert at is not None
            name = f"release-{hashlib.sha256(command.decision_id.encode()).hexdigest()[:40]}"
        elif now - command.due_at > MAX_LATENESS:
            return
        else:
            name, at = schedule_name(command.profile_key, command.trigger), at or command.due_at
        when = max(at, now + timedelta(minutes=1))
        request = {
            "Name": name,
            "GroupName": self.group,
            "ScheduleExpression": f"at({_whole_second_after(when).strftime('%Y-%m-%dT%H:%M:%S')})",
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "State": "ENABLED",
            "Target": {"Arn": self.queue_arn, "RoleArn": self.role_arn, "Input": command.model_dump_json()},
        }
        with _throttled_is_retry():
            try:
                self.client.create_schedule(**request)
            except ClientError as error:
                if aws.error_code(error) != "ConflictException":
                    raise
                self.client.update_schedule(**request)


@contextmanager
def _throttled_is_retry() -> Iterator[None]:
    """Scheduler's quotas (e.g. CreateSchedule, 50 requests a second by default) throttle a burst: after
    botocore's own retries, :class:`Retry` makes the queue back the record off (``nextbest.aws.batch``) instead of
    spending its deliveries at once. Arming is idempotent, so the retry just arms again."""
    try:
        yield
    except ClientError as error:
        if aws.error_code(error) in aws.THROTTLING:
            raise Retry(aws.error_code(error)) from error
        raise


def _whole_second_after(when: datetime) -> datetime:
    """``at()`` has one-second resolution; firing early would find the trigger not yet due."""
    return when.replace(microsecond=0) + timedelta(seconds=1 if when.microsecond else 0)


@lru_cache(maxsize=65536)
def at_expression(expression: str) -> datetime:
    """The time of an ``at(…)`` schedule expression (UTC), as the emulation fires it."""
    return datetime.strptime(expression, "at(%Y-%m-%dT%H:%M:%S)").replace(tzinfo=UTC)
