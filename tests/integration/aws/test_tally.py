"""The tally's items on the emulated table: counts added exactly once per shard, read back summed, and the items of
closed shards folded into the campaign's total exactly once, the sums unchanged."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nextbest.core.counters import DAILY_RETENTION, Change, Counter
from nextbest.tally.service import FOLD_AFTER, fold

from tests.builders import table_store


def sent(n: int = 1) -> Counter:
    return Counter("s:cart", "FUNNEL#a#email", Decimal(n), attribute="sent")


def keys(emulation) -> list[str]:
    items = emulation.client("dynamodb").scan(TableName=emulation.output("TableName"))["Items"]
    return sorted(i["sk"]["S"] for i in items if i["pk"]["S"] == "s:cart")


def test_a_replayed_batch_adds_nothing_and_closed_shards_fold_into_the_total_once(emulation):
    store = table_store(emulation)
    day = Counter("s:cart", "DAY#2026-11-02", Decimal(1), attribute="sends#a")
    batch = [
        Change(11, (sent(),)),
        Change(12, (sent(2), Counter("s:cart", "VARIANT#a", Decimal(1), attribute="sends"), day)),
    ]
    assert fold(store, "shard-old", batch, emulation.clock.now()) == 3  # counter items added to, in one write
    assert fold(store, "shard-old", batch, emulation.clock.now()) == 0  # handed again: nothing twice
    counted = {"FUNNEL#a#email": {"sent": 3}, "VARIANT#a": {"sends": 1}, "DAY#2026-11-02": {"sends#a": 1}}
    assert store.counts("cart") == counted
    assert fold(store, "shard-old", [*batch, Change(99, (sent(),))], emulation.clock.now()) == 1  # only the new one
    counted["FUNNEL#a#email"]["sent"] = 4

    # Days later a new shard's first batch folds the old shard's item into the total
    emulation.clock.advance(FOLD_AFTER + timedelta(hours=1))
    assert fold(store, "shard-new", [Change(7, (sent(),))], emulation.clock.now()) == 1
    assert keys(emulation) == ["DAY#2026-11-02", "TALLY#TOTAL", "TALLY#shard-new"]  # days apart: they expire
    counted["FUNNEL#a#email"]["sent"] = 5
    assert store.counts("cart") == counted
    daily = emulation.client("dynamodb").get_item(
        TableName=emulation.output("TableName"), Key={"pk": {"S": "s:cart"}, "sk": {"S": "DAY#2026-11-02"}}
    )["Item"]
    assert int(daily["expires_at"]["N"]) == int((datetime(2026, 11, 2, tzinfo=UTC) + DAILY_RETENTION).timestamp())
    assert store.fold_closed("cart", emulation.clock.now() - FOLD_AFTER) == 0  # nothing left to fold
    assert store.arm_counts("cart", ["a"]) == {"a": (1, 0)}
