"""The tally: which counts a change of a decision record adds, and folding a shard's batches into its counter items
exactly once, however often Lambda hands a batch (again, larger, or to two workers at once)."""

from datetime import timedelta
from decimal import Decimal

from nextbest.core.counters import Change, Counter, decided, funnel, tally
from nextbest.core.decision import Decision
from nextbest.memory import MemoryStore
from nextbest.tally.service import fold

from tests.conftest import T0

SENT = Decision(
    decision_id="d-1", profile_key="c:1", trigger="cart_abandoned", trigger_due_at=T0, decided_at=T0,
    action="send", campaign_id="cart", channel="email", variant="a",
)  # fmt: skip


def test_a_decision_counts_when_decide_records_it_and_at_each_stage_its_changes_prove():
    assert tally(SENT, None, ("queued", set())) == decided(SENT)
    assert tally(SENT, None, ("waiting", set())) == []  # a fallback: the decision it re-routes was counted
    assert tally(SENT, ("queued", set()), ("sending", {"claim"})) == []
    assert tally(SENT, ("sending", {"claim"}), ("sent", {"claim"})) == [funnel(SENT, "sent")]
    assert tally(SENT, ("sending", set()), ("failed", set())) == []  # refused before it was sent
    assert tally(SENT, ("delivered", set()), ("failed", set())) == [funnel(SENT, "failed")]
    assert tally(SENT, ("sent", set()), ("sent", {"opened_at"})) == [funnel(SENT, "opened")]
    assert tally(SENT, ("sent", {"opened_at"}), ("sent", {"opened_at", "clicked_at"})) == [funnel(SENT, "clicked")]
    assert tally(SENT, ("sent", {"opened_at"}), None) == []  # erased or expired: counts stay


def cart(attribute: str, by: int = 1) -> Counter:
    return Counter("s:cart", "FUNNEL#a#email", Decimal(by), attribute=attribute)


BATCH = [Change(101, (cart("sent"),)), Change(102), Change(103, (cart("opened"), cart("revenue", 30)))]


def test_a_batch_handed_again_counts_nothing_twice():
    store = MemoryStore()
    assert fold(store, "shard-1", BATCH, T0) == 1  # one item of one campaign: one write
    assert fold(store, "shard-1", BATCH, T0) == 0
    assert store.counters[("s:cart", "FUNNEL#a#email")] == {"sent": 1, "opened": 1, "revenue": 30}
    assert store.checkpoints[("shard-1", "cart")] == 103


def test_a_batch_handed_again_with_more_records_counts_only_the_new_ones():
    store = MemoryStore()
    fold(store, "shard-1", BATCH[:2], T0)
    fold(store, "shard-1", BATCH, T0)
    assert store.counters[("s:cart", "FUNNEL#a#email")] == {"sent": 1, "opened": 1, "revenue": 30}


def test_shards_count_apart_and_a_worker_that_lost_the_race_counts_what_is_left():
    store = MemoryStore()

    class Raced(MemoryStore):
        """The first write meets another worker's, which counted the first record meanwhile."""

        def __init__(self) -> None:
            super().__init__()
            self.raced = False

        def add_tally(self, shard, campaign_id, counters, through, since=None, before=None):
            if not self.raced:
                self.raced = True
                assert super().add_tally(shard, campaign_id, [cart("sent")], 101, since, before).added
            return super().add_tally(shard, campaign_id, counters, through, since, before)

    raced = Raced()
    fold(raced, "shard-1", BATCH, T0)
    assert raced.counters[("s:cart", "FUNNEL#a#email")] == {"sent": 1, "opened": 1, "revenue": 30}
    fold(store, "shard-1", BATCH, T0)
    fold(store, "shard-2", [Change(5, (cart("sent"),))], T0)  # another shard's sequence numbers are its own
    assert store.counters[("s:cart", "FUNNEL#a#email")]["sent"] == 2


def test_a_later_batch_is_added_without_knowing_the_checkpoint_and_an_overlapping_one_learns_it_from_the_refusal():
    store = MemoryStore()
    fold(store, "shard-1", BATCH[:1], T0)
    writes = store.writes
    fold(store, "shard-1", BATCH[2:], T0)  # after the checkpoint: one write, no retry
    assert store.writes == writes + 1
    fold(store, "shard-1", [*BATCH, Change(104, (cart("sent"),))], T0)  # all but the last counted already
    assert store.counters[("s:cart", "FUNNEL#a#email")] == {"sent": 2, "opened": 1, "revenue": 30}
    assert store.checkpoints[("shard-1", "cart")] == 104


def test_the_memory_store_counts_each_stage_of_a_message_once_as_the_tally_would():
    store = MemoryStore()
    store.commit_decision(SENT, "queued", None)
    assert store.claim("d-1", "token")
    assert store.move_decision("d-1", "sending", "sent")
    assert store.annotate_decision("d-1", opened_at="t1")
    assert not store.annotate_decision("d-1", opened_at="t2")
    assert not store.move_decision("d-1", "sending", "sent")
    later = SENT.model_copy(update={"decision_id": "d-2", "decided_at": T0 + timedelta(days=1)})
    store.commit_decision(later, "deferred", None)  # not a send yet
    assert store.counters[("s:cart", "FUNNEL#a#email")] == {"decided": 1, "sent": 1, "opened": 1}
