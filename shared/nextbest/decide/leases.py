"""Campaigns' hourly send caps and budgets, taken in leased blocks instead of one shared item per decision.

A cap is one item per campaign and hour (``HOUR#<hour>``) and a budget one per campaign (``BUDGET``); if every
decision added to them in its transaction, as before, one campaign could not make more decisions a second than
one item takes writes (1,000 write units a second, fewer under transaction conflicts). Instead each decide
container leases a block of sends (or of budget) from the item with one conditional ADD that never passes the
limit (``Counters.lease``), and spends it decision by decision in memory:

* never over: the item counts everything leased, and a lease is granted only up to the limit; a decision that
  fails to commit gives its share back to the container's block;
* bounded under-sending: what containers hold unspent when the hour ends (or when they are recycled, or crash
  between taking a share and committing) is never sent. A block is at most ``1 / MAX_SHARE`` of the limit, so
  the shortfall is at most that much per container; near the limit, a lease gets only what is left;
* blocks start at one decision's amount and double with each lease the container takes for the same item, so a
  campaign sending little leases little, and one sending thousands a second writes its item a few times a
  second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from nextbest.core.counters import Counter
from nextbest.core.ports import Counters

MAX_SHARE = 16
"""A block is at most this fraction of its limit (and at least one decision's amount)."""
Key = tuple[str, str]


@dataclass
class Leases:
    """The blocks one decide container holds, per limit item."""

    store: Counters
    held: dict[Key, Decimal] = field(default_factory=dict)
    leased: dict[Key, int] = field(default_factory=dict)
    """How many leases this container took per item: the next block is twice the last."""
    until: dict[Key, datetime] = field(default_factory=dict)
    spent: set[Key] = field(default_factory=set)
    """Items a lease found at their limit (it got less than it asked): they never have room again, so the
    container stops asking and spends what it holds."""

    def take(self, limits: Sequence[Counter], now: datetime) -> str | None:
        """Take every limit's amount (``by``) from the blocks held, leasing more where short. None when all were
        taken; else the refusal of the first that could not be, and nothing stays taken."""
        self._drop_expired(now)
        taken: list[Counter] = []
        for limit in limits:
            if not self._take(limit):
                self.give_back(taken)
                return limit.refusal
            taken.append(limit)
        return None

    def give_back(self, limits: Sequence[Counter]) -> None:
        """Return what a decision took but did not use (its commit failed): the next decision spends it."""
        for limit in limits:
            key = (limit.pk, limit.sk)
            self.held[key] = self.held.get(key, Decimal(0)) + limit.by

    def _take(self, limit: Counter) -> bool:
        key = (limit.pk, limit.sk)
        if self.held.get(key, Decimal(0)) < limit.by and key not in self.spent:
            want = self.block(limit)
            granted = self.store.lease(limit, want)
            if granted < want:
                self.spent.add(key)
            self.leased[key] = min(self.leased.get(key, 0) + 1, 32)
            self.held[key] = self.held.get(key, Decimal(0)) + granted
            if limit.expires_at is not None:
                self.until[key] = limit.expires_at
        if self.held.get(key, Decimal(0)) < limit.by:
            return False
        self.held[key] -= limit.by
        return True

    def block(self, limit: Counter) -> Decimal:
        """How much to lease for ``limit``: twice the last block, between one decision's amount and the cap's
        ``1 / MAX_SHARE``."""
        assert limit.limit is not None
        grown = limit.by * 2 ** self.leased.get((limit.pk, limit.sk), 0)
        return max(limit.by, min(grown, limit.limit / MAX_SHARE))

    def _drop_expired(self, now: datetime) -> None:
        """Forget the blocks of items past their hour (their leases are spent or lost with it)."""
        for key in [k for k, at in self.until.items() if at <= now]:
            for held in (self.held, self.leased, self.until):
                held.pop(key, None)
            self.spent.discard(key)
