"""The emulated scheduler skips the due-index polls that would find nothing: each shard's poll fires at the first
minute whose window holds an index time of that shard, exactly as firing every minute would first find one."""

import json
import random
import types
from datetime import timedelta

import boto3
from nextbest.aws.store import BY_DUE
from nextbest.core.clock import ManualClock
from nextbest.core.due import LAG, POLL_EVERY, poll_window, to_index

from infra.local import moto_speedups
from infra.local.emulator.scheduler import Scheduler
from tests.conftest import T0


def _table(ddb) -> None:
    ddb.create_table(
        TableName="t",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "due_shard", "due_at")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": BY_DUE,
                "KeySchema": [
                    {"AttributeName": "due_shard", "KeyType": "HASH"},
                    {"AttributeName": "due_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )


def _poll(shard: int) -> types.SimpleNamespace:
    body = json.dumps({"type": "poll", "poll_at": "<aws.scheduler.scheduled-time>", "shard": shard})
    return types.SimpleNamespace(name=f"poll-{shard}", schedule_expression="rate(1 minute)", target={"Input": body})


def _first_poll_finding(times: list, tick, horizon) -> object:
    """Firing every minute from ``tick``: the first poll whose window holds one of ``times`` (None by ``horizon``)."""
    while tick <= horizon:
        after, until = poll_window(tick)
        if any(after < t <= until for t in times):
            return tick
        tick += POLL_EVERY
    return None


def test_given_index_times_that_move_then_each_shards_poll_fires_when_polling_every_minute_first_finds_one(aws):
    moto_speedups.install()
    ddb = boto3.client("dynamodb")
    _table(ddb)
    clock = ManualClock(T0)
    scheduler = Scheduler(types.SimpleNamespace(output=lambda name: "t"), clock)  # type: ignore[arg-type]
    polls = {shard: _poll(shard) for shard in range(3)}
    draw = random.Random(5)
    at: dict[str, tuple[int, object]] = {}
    for step in range(300):
        key = f"p{draw.randrange(12)}"
        if draw.random() < 0.2:
            ddb.delete_item(TableName="t", Key={"pk": {"S": key}, "sk": {"S": "P"}})
            at.pop(key, None)
        else:  # an index time, mostly a whole minute as index times are, from minutes before the clock to 30 after
            whole = clock.now().replace(second=0, microsecond=0)
            due = whole + timedelta(minutes=draw.randrange(-3, 30), seconds=draw.choice([0, 0, draw.randrange(60)]))
            shard = draw.randrange(3)
            item = {"due_shard": {"S": str(shard)}, "due_at": {"S": to_index(due)}}
            ddb.put_item(TableName="t", Item={"pk": {"S": key}, "sk": {"S": "P"}} | item)
            at[key] = (shard, due)
        for shard, poll in polls.items():
            found = scheduler.next_fire("g", poll)
            tick = scheduler.recurring[("g", poll.name)][0]  # the next minute's poll, were none skipped
            times = [due for s, due in at.values() if s == shard]
            expected = _first_poll_finding(times, tick, tick + timedelta(hours=2) + LAG)
            assert (found if expected else None) == expected, (step, shard)
            if found <= (later := clock.now() + timedelta(seconds=draw.randrange(0, 600))):
                clock.set(max(clock.now(), found))  # it fires, as the emulation fires it; the next is a minute on
                scheduler.recurring[("g", poll.name)] = (found + POLL_EVERY, POLL_EVERY)
            clock.set(max(clock.now(), later))
