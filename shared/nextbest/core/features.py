"""The one feature function of the purchase models, shared by training and scoring.

Training reads transactions from a CSV and scoring reads a :class:`~nextbest.core.profiles.Profile`; both are
first reduced to the same :class:`History` — exactly the order summary a profile keeps (count, revenue,
first and last order, the last ``MAX_ORDERS`` order times) — and only then turned into features. So the
model never sees anything at training time that the profile could not give it at scoring time (no
train/serve skew), and a test checks that both roads give identical numbers.

Pure Python on purpose: this module is part of the ``nextbest`` package that ingest and deliver share, and
they must never import numpy.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

from nextbest.core.profiles import MAX_ORDERS

if TYPE_CHECKING:
    from nextbest.core.profiles import Profile

DAY = 86_400.0
NAN = float("nan")

FEATURES = (
    "recency_days",
    "tenure_days",
    "orders",
    "log_mean_order_value",
    "mean_interval_days",
    "recency_over_interval",
    "last_interval_days",
    "interval_cv",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "repeat_rate_per_year",
)
"""What :func:`features` returns, in order. Intervals are ``nan`` for one-time buyers (a tree splits on it)."""


@dataclass(frozen=True)
class History:
    """A customer's orders as a profile summarises them, as of one moment."""

    order_count: int
    revenue: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None
    recent: tuple[datetime, ...]
    """Times of the last ``MAX_ORDERS`` orders, oldest first (what ``Profile.orders`` keeps)."""


def history_of(profile: Profile) -> History:
    return History(
        order_count=profile.order_count,
        revenue=profile.revenue,
        first_order_at=profile.first_order_at,
        last_order_at=profile.last_order_at,
        recent=tuple(o.at for o in profile.orders),
    )


class OrderLog:
    """One customer's transactions, sorted once, queried as of many cut-offs (the training backtest)."""

    def __init__(self, orders: Iterable[tuple[datetime, Decimal]]) -> None:
        ordered = sorted(orders, key=lambda o: o[0])
        self.times = [at for at, _ in ordered]
        self.cumulative: list[Decimal] = []
        total = Decimal(0)
        for _, amount in ordered:
            total += amount
            self.cumulative.append(total)

    def count_between(self, start: datetime, end: datetime) -> int:
        """Orders placed at or after ``start`` and strictly before ``end``."""
        return bisect_left(self.times, end) - bisect_left(self.times, start)

    def as_of(self, now: datetime) -> History:
        """The summary a profile would hold having seen every order strictly before ``now``."""
        n = bisect_left(self.times, now)
        if n == 0:
            return History(0, Decimal(0), None, None, ())
        return History(
            order_count=n,
            revenue=self.cumulative[n - 1],
            first_order_at=self.times[0],
            last_order_at=self.times[n - 1],
            recent=tuple(self.times[max(0, n - MAX_ORDERS) : n]),
        )


def features(history: History, now: datetime) -> list[float]:
    """Recency, frequency, value and rhythm of a customer's purchases as of ``now`` (see ``FEATURES``).

    Every quantity is relative (days, counts, ratios), never a calendar date, so a model trained on one
    shop's years applies to another's. ``recency_over_interval`` compares the silence with the customer's
    own rhythm: 60 quiet days mean little for a twice-a-year buyer and a lot for a weekly one.
    """
    if history.order_count == 0 or history.first_order_at is None or history.last_order_at is None:
        return [NAN, NAN, 0.0, NAN, NAN, NAN, NAN, NAN, 0.0, 0.0, 0.0, NAN]
    recency = (now - history.last_order_at).total_seconds() / DAY
    tenure = (now - history.first_order_at).total_seconds() / DAY
    n = history.order_count
    mean_value = float(history.revenue) / n
    span = (history.last_order_at - history.first_order_at).total_seconds() / DAY
    mean_interval = span / (n - 1) if n > 1 else NAN
    gaps = _gaps(history.recent)
    last_interval = gaps[-1] if gaps else NAN
    cv = NAN
    if len(gaps) >= 2:
        mu = sum(gaps) / len(gaps)
        sd = math.sqrt(sum((g - mu) ** 2 for g in gaps) / len(gaps))
        cv = sd / mu if mu > 0 else 0.0
    return [
        recency,
        tenure,
        float(n),
        math.log1p(max(mean_value, 0.0)),
        mean_interval,
        recency / mean_interval if n > 1 and mean_interval > 0 else NAN,
        last_interval,
        cv,
        float(_since(history.recent, now, 30)),
        float(_since(history.recent, now, 90)),
        float(_since(history.recent, now, 365)),
        (n - 1) / max(tenure, 1.0) * 365.0,
    ]


def _gaps(times: Sequence[datetime]) -> list[float]:
    return [(b - a).total_seconds() / DAY for a, b in pairwise(times)]


def _since(times: Sequence[datetime], now: datetime, days: int) -> int:
    return sum(1 for t in times if 0 <= (now - t).total_seconds() < days * DAY)
