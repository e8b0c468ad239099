"""EventBridge Scheduler: the one-time ``at(…)`` schedules decide arms fire as the injectable clock passes their
time, and are deleted afterwards as ``ActionAfterCompletion=DELETE`` asks; ``rate(…)`` schedules (the minute's
polls) fire every interval from when the emulation came up.

The polls of the due index (one per shard) would fire thousands of times in a simulated week, nearly always to find
nothing: a poll whose window (``nextbest.core.due.poll_window``) holds no index time of its shard is skipped, which
changes nothing but the time the emulation takes. Only the clock's moves and the functions write, so the index read
when the next fire is computed is complete for every window that ends before the clock moves on (a later write has
a later index time).
"""

from __future__ import annotations

import bisect
import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from nextbest.aws.scheduler import at_expression
from nextbest.aws.store import BY_DUE
from nextbest.core.clock import ManualClock
from nextbest.core.due import FORMAT, LAG, to_index

from infra.local import moto_speedups
from infra.local.emulator.account import ACCOUNT, REGION
from infra.local.emulator.event_sources import Requests, uncounted
from infra.local.emulator.provisioning import Deployment

UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
RECURRING, ONCE = "rate", "at"
"""The target a schedule's firing is counted under (``Invoke``): a recurring one (the due index's polls, which fire
whatever the traffic: a standing cost) or a one-time one (an alarm decide armed for one customer)."""


class Scheduler:
    def __init__(self, deployment: Deployment, clock: ManualClock) -> None:
        self.deployment = deployment
        self.clock = clock
        self.recurring: dict[tuple[str, str], tuple[datetime, timedelta]] = {}
        """Recurring schedules: (group, name) -> (next fire, interval)."""
        self.requests: Requests = uncounted
        """Told of each request a schedule's firing stands for (the emulation's metering counts them)."""

    def due(self, until: datetime) -> list[tuple[datetime, str, Any]]:
        """(when, group, schedule) of every enabled schedule due by ``until``, soonest first."""
        from moto.scheduler.models import scheduler_backends

        due = []
        for group in scheduler_backends[ACCOUNT][REGION].schedule_groups.values():
            for schedule in group.schedules.values():
                when = self.next_fire(group.name, schedule)
                if when <= until and schedule.state != "DISABLED":
                    due.append((when, group.name, schedule))
        return sorted(due, key=lambda d: (d[0], d[2].name))

    def next_fire(self, group: str, schedule: Any) -> datetime:
        """``at(…)`` fires once; ``rate(n unit)`` every n units from when the emulation came up."""
        expression = schedule.schedule_expression
        if not expression.startswith("rate("):
            return at_expression(expression)
        key = (group, schedule.name)
        if key not in self.recurring:
            amount, unit = expression[5:-1].split()
            interval = timedelta(seconds=int(amount) * UNIT_SECONDS[unit.rstrip("s")])
            self.recurring[key] = (self.clock.now() + interval, interval)
        tick, interval = self.recurring[key]
        body = schedule.target.get("Input", "")
        return self._first_useful(tick, interval, json.loads(body).get("shard")) if '"poll_at"' in body else tick

    def _first_useful(self, tick: datetime, interval: timedelta, shard: int | None) -> datetime:
        """The first poll from ``tick`` on whose window holds an index time of its shard (every shard if it names
        none; the far future if none does).

        A window reaches an index time one ``LAG`` after it: the poll at ``tick`` is useful if some time is ready in
        ``(tick - interval, tick]``, else the first time ready after ``tick`` names the first useful poll. Both are
        the first index time after ``tick - interval - LAG``, found by bisection in the shard's times as the index
        holds them (strings that sort as times do, in whole seconds: after a time is after its whole second)."""
        first = datetime.max.replace(tzinfo=tick.tzinfo)
        after = to_index((tick - interval - LAG).replace(microsecond=0))
        for times in self._index_times(shard):
            found = bisect.bisect_right(times, after)
            if found == len(times):
                continue
            ready = _parse(times[found]) + LAG
            if ready <= tick:
                return tick
            first = min(first, tick + interval * -((tick - ready) // interval))
        return first

    def _index_times(self, shard: int | None) -> list[list[str]]:
        """The index times of a shard (of each shard if None), in order, as the index holds them now."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[ACCOUNT][REGION].get_table(self.deployment.output("TableName"))
        ranges = moto_speedups.index_ranges(table, BY_DUE)
        if shard is None:
            return list(ranges.values())
        return [ranges.get(("S", str(shard)), [])]

    def fire(self, group: str, schedule: Any) -> None:
        """Send the schedule's input to its target queue, then what its completion asks: Scheduler's own work, done
        in moto's backends directly (no request each) and counted as the requests it stands for."""
        from moto.scheduler.models import scheduler_backends
        from moto.sqs.models import sqs_backends

        target = schedule.target
        arns = self.deployment.arns
        url = self.deployment.physical[next(k for k, v in arns.items() if v == target["Arn"])]
        scheduled = self.next_fire(group, schedule)
        body = target.get("Input", "{}").replace("<aws.scheduler.scheduled-time>", scheduled.isoformat())
        queue = url.rsplit("/", 1)[-1]
        key = (group, schedule.name)
        self.requests("scheduler", "Invoke", RECURRING if key in self.recurring else ONCE, 1)
        sqs_backends[ACCOUNT][REGION].send_message(queue, body)
        self.requests("sqs", "SendMessage", queue, 1)
        if key in self.recurring:  # the next tick after this one (those skipped before it had nothing to do)
            self.recurring[key] = (scheduled + self.recurring[key][1], self.recurring[key][1])
        elif getattr(schedule, "action_after_completion", "NONE") == "DELETE":
            scheduler_backends[ACCOUNT][REGION].delete_schedule(group, schedule.name)
            self.requests("scheduler", "DeleteSchedule", "", 1)
        else:
            schedule.state = "DISABLED"


@functools.lru_cache(maxsize=65536)
def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, FORMAT).replace(tzinfo=UTC)
