"""The tally: campaign statistics folded from the table's stream, exactly once, without a transaction.

Every change of a decision record, and every profile write that carries an order's credits, reaches the tally in
its stream shard's order (``nextbest.core.counters.tally`` says what each counts). The counts of one batch are
added to one item per campaign and shard (``s:<campaign>`` / ``TALLY#<shard>``) that nothing else writes, in one
UpdateItem that also moves the item's checkpoint, the sequence number of the last change counted. The write is
conditioned on the checkpoint being below the batch's first change (nothing of it counted yet: the common case,
so no read comes first); refused, it returns the checkpoint it found, and the changes after it are added on
condition that it is still that one. So a batch Lambda retries, or that a second worker runs meanwhile, adds
nothing twice: its changes up to the checkpoint are skipped, the rest counted once. Per campaign, one write a
batch instead of several per message on one item: readers sum the shard items (``CounterItems.counts``).

Stream shards close within hours and new ones open, so shard items would pile up: when a shard's first batch
creates its item for a campaign, the items of that campaign created more than :data:`FOLD_AFTER` ago are folded
into its ``TALLY#TOTAL`` (a shard's records are all processed within a day of it opening: kept 24 hours). So a
campaign has at most the shard items of the last two days and its total, whatever its age.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from nextbest.core.counters import Change, Counter, combined
from nextbest.core.ports import Conflict, Tallies

FOLD_AFTER = timedelta(days=2)
"""Shard items created longer ago than this are folded into the campaign's total: their shards are closed, and
every record they had expired from the stream (24 hours) after being counted."""
ATTEMPTS = 4
"""How often a campaign's counts are tried again when another worker moved its checkpoint meanwhile."""


def fold(store: Tallies, shard: str, changes: Sequence[Change], now: datetime) -> int:
    """Count a batch of one shard's changes, in order: how many counter adds were written (0 on a replay)."""
    by_campaign: dict[str, list[tuple[int, Counter]]] = {}
    for change in changes:
        for counter in change.counts:
            by_campaign.setdefault(counter.pk.removeprefix("s:"), []).append((change.sequence, counter))
    written = 0
    for campaign_id, counted in by_campaign.items():
        added, first = _fold_campaign(store, shard, campaign_id, counted)
        written += added
        if first:
            store.fold_closed(campaign_id, now - FOLD_AFTER)
    return written


def _fold_campaign(
    store: Tallies, shard: str, campaign_id: str, counted: list[tuple[int, Counter]]
) -> tuple[int, bool]:
    """The counter adds written, and whether this created the shard's item for the campaign."""
    through = max(sequence for sequence, _ in counted)
    before = min(sequence for sequence, _ in counted)
    since: int | None = None
    for _ in range(ATTEMPTS):
        new = combined([c for sequence, c in counted if since is None or sequence > since])
        if not new:
            return 0, False
        done = store.add_tally(shard, campaign_id, new, through, since=since, before=before)
        if done.added:
            return len(new), done.created
        since = done.checkpoint
    raise Conflict(f"s:{campaign_id}", why="the tally's checkpoint kept moving")
