"""The tally: campaign statistics folded from the table's stream, exactly once, without a transaction.

Every change of a decision record, and every profile write that carries an order's credits, reaches the tally in
its stream shard's order (``nextbest.core.counters.tally`` says what each counts). The counts of one batch are
added to one item per campaign and shard (``s:<campaign>`` / ``TALLY#<shard>``) that nothing else writes, in one
UpdateItem that also moves the item's checkpoint, the sequence number of the last change counted, on condition
that it is still the one read. So a batch Lambda retries, or that a second worker runs meanwhile, adds nothing
twice: its changes up to the checkpoint are skipped, the rest counted once. Per campaign, one write a batch
instead of several per message on one item: readers sum the shard items (``CounterItems.counts``).
"""

from __future__ import annotations

from collections.abc import Sequence

from nextbest.core.counters import Change, Counter, combined
from nextbest.core.ports import Conflict, Tallies

ATTEMPTS = 4
"""How often a campaign's counts are re-read and tried when another worker moved its checkpoint meanwhile."""


def fold(store: Tallies, shard: str, changes: Sequence[Change]) -> int:
    """Count a batch of one shard's changes, in order: how many counter adds were written (0 on a replay)."""
    by_campaign: dict[str, list[tuple[int, Counter]]] = {}
    for change in changes:
        for counter in change.counts:
            by_campaign.setdefault(counter.pk.removeprefix("s:"), []).append((change.sequence, counter))
    written = 0
    for campaign_id, counted in by_campaign.items():
        written += _fold_campaign(store, shard, campaign_id, counted)
    return written


def _fold_campaign(store: Tallies, shard: str, campaign_id: str, counted: list[tuple[int, Counter]]) -> int:
    through = max(sequence for sequence, _ in counted)
    for _ in range(ATTEMPTS):
        since = store.checkpoint(shard, campaign_id)
        new = combined([c for sequence, c in counted if since is None or sequence > since])
        if not new:
            return 0
        if store.add_tally(shard, campaign_id, new, since, through):
            return len(new)
    raise Conflict(f"s:{campaign_id}", why="the tally's checkpoint kept moving")
