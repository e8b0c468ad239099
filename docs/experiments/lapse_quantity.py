"""Issue 16: do order quantities (or purchase regularity) raise lapse AUC on customers the model never saw?

Run from the repository root after ``make data``, one split and holdout at a time, e.g.::

    .venv/bin/python docs/experiments/lapse_quantity.py 1997-10-01/273
    .venv/bin/python docs/experiments/lapse_quantity.py 1997-12-01/180 base,no_value,+units 20

It reads only the CDNOW *sample* (2,357 customers, which has the number of CDs per order), so it can be used to
choose; the full log is for one final check only. It is :func:`nextbest_lab.models.generalisation` with extra
columns: the backtest's feature vector plus candidate features from each customer's order quantities and gaps,
each candidate fitted with the shipped estimator (log inputs, pairwise products, logistic) on one random half
of the customers' data before the split and scored on the other half's lapse in the holdout, all candidates on
the same halves (seed 0) so the differences are paired. ``hindsight <name>`` fits the same inputs to the
training half's own labels from after the split (as ``generalisation``'s ceiling): whether the inputs hold
information about this holdout at all, whatever the backtest makes of them. README, "Models", has the
figures: no candidate beat the shipped inputs, so profiles do not keep quantities and the model is unchanged.

Not part of the package: it needs what a profile does not keep (quantities), which is the question it answers.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from nextbest.core.features import FEATURES, OrderLog, features
from nextbest_lab import models as m
from sklearn.metrics import roc_auc_score

EXTRA = (
    "log_units_per_order",
    "log_unit_price",
    "multi_unit_share",
    "log_last_units",
    "units_trend",
    "gap_cv_shrunk",
    "log_total_units",
    "tenure_over_interval",
)
NAMES = (*FEATURES, "horizon_days", *EXTRA)
SHRINK = 2.0
"""Pseudo-gaps pulling a customer's gap CV towards 1 (a Poisson buyer's), so two gaps do not claim a rhythm."""


def _with(base: dict[str, str], drop: tuple[str, ...] = (), **add: str) -> dict[str, str]:
    return {**{k: v for k, v in base.items() if k not in drop}, **add}


BASE = dict(m.MODEL_INPUTS)
CANDIDATES: dict[str, tuple[dict[str, str], float]] = {
    "base": (BASE, 1.0),
    "+units": (_with(BASE, log_units_per_order="as is"), 1.0),
    "+unitprice": (_with(BASE, log_unit_price="as is"), 1.0),
    "units_price_no_value": (
        _with(BASE, ("log_mean_order_value",), log_units_per_order="as is", log_unit_price="as is"),
        1.0,
    ),
    "+multi": (_with(BASE, multi_unit_share="as is"), 1.0),
    "+last_units": (_with(BASE, log_last_units="as is"), 1.0),
    "+trend": (_with(BASE, units_trend="as is"), 1.0),
    "+total_units": (_with(BASE, log_total_units="as is"), 1.0),
    "+cv_shrunk": (_with(BASE, gap_cv_shrunk="as is"), 1.0),
    "+tenure_rhythm": (_with(BASE, tenure_over_interval="log"), 1.0),
    "no_value": (_with(BASE, ("log_mean_order_value",)), 1.0),
    "no_value+units": (_with(BASE, ("log_mean_order_value",), log_units_per_order="as is"), 1.0),
    "+units_C0.1": (_with(BASE, log_units_per_order="as is"), 0.1),
    "+units_price_multi_C0.05": (
        _with(BASE, log_units_per_order="as is", log_unit_price="as is", multi_unit_share="as is"),
        0.05,
    ),
    "base_C0.1": (BASE, 0.1),
}
"""Name -> (inputs as in ``MODEL_INPUTS``, inverse regularisation strength C)."""


class Shop:
    """The sample's customers: order logs and, beside them, each order's number of units."""

    def __init__(self) -> None:
        orders: dict[str, list[Any]] = defaultdict(list)
        for t in m.cdnow_transactions():
            orders[t.customer_id].append((t.at, t.amount, t.quantity))
        self.customers = sorted(orders)
        self.logs = {c: OrderLog([(at, amount) for at, amount, _ in orders[c]]) for c in self.customers}
        self.units = {c: [q for _, _, q in sorted(orders[c], key=lambda o: o[0])] for c in self.customers}

    def row(self, c: str, now: datetime, horizon: float) -> list[float]:
        """The shipped feature vector, the horizon, then ``EXTRA`` as of ``now``."""
        log = self.logs[c]
        n = bisect_left(log.times, now)
        q = self.units[c][:n]
        total = sum(q)
        base = features(log.as_of(now), now)
        days = [t.timestamp() / 86_400 for t in log.times[max(0, n - 50) : n]]
        gaps = np.diff(days)
        cv = 1.0
        if len(gaps):
            mu = float(gaps.mean())
            raw = float(gaps.std()) / mu if mu > 0 else 0.0
            cv = (len(gaps) * raw + SHRINK) / (len(gaps) + SHRINK)
        interval = base[FEATURES.index("mean_interval_days")]
        return [
            *base,
            horizon,
            math.log(total / n),
            math.log1p(max(float(log.cumulative[n - 1]), 0.0) / total),
            sum(1 for x in q if x > 1) / n,
            math.log(q[-1]),
            math.log(q[-1] / (total / n)),
            cv,
            math.log(total),
            base[FEATURES.index("tenure_days")] / interval if n > 1 and interval > 0 else 0.0,
        ]

    def backtest(self, as_of: datetime, horizons: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :func:`nextbest_lab.models.backtest`, with the extra columns."""
        start = min(log.times[0] for log in self.logs.values())
        rows, labels, who = [], [], []
        for h in horizons:
            cut = as_of - timedelta(days=h)
            for _ in range(m.MAX_CUTOFFS):
                if cut < start + timedelta(days=m.MIN_HISTORY_DAYS):
                    break
                for i, c in enumerate(self.customers):
                    if bisect_left(self.logs[c].times, cut) == 0:
                        continue
                    rows.append(self.row(c, cut, float(h)))
                    labels.append(int(self.logs[c].count_between(cut, cut + timedelta(days=h)) == 0))
                    who.append(i)
                cut -= timedelta(days=m.STEP_DAYS)
        return np.asarray(rows), np.asarray(labels), np.asarray(who)


def estimator(inputs: dict[str, str], c: float) -> Any:
    """The shipped pipeline (:func:`nextbest_lab.models.timing_model`) over ``NAMES`` with strength ``c``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

    logged = [NAMES.index(n) for n, how in inputs.items() if how == "log"]
    kept = [NAMES.index(n) for n, how in inputs.items() if how != "log"]
    return Pipeline(
        [
            (
                "inputs",
                ColumnTransformer([("log", FunctionTransformer(np.log1p), logged), ("kept", "passthrough", kept)]),
            ),
            ("scale", StandardScaler()),
            ("pairs", PolynomialFeatures(2, include_bias=False)),
            ("rescale", StandardScaler()),
            ("logit", LogisticRegression(C=c, max_iter=3000)),
        ]
    )


def run(split: datetime, holdout_days: int, names: list[str], splits: int) -> dict[str, list[float]]:
    shop = Shop()
    seen = [i for i, c in enumerate(shop.customers) if bisect_left(shop.logs[c].times, split) > 0]
    end = split + timedelta(days=holdout_days)
    lapsed = np.asarray([int(shop.logs[shop.customers[i]].count_between(split, end) == 0) for i in seen])
    now = np.asarray([shop.row(shop.customers[i], split, float(holdout_days)) for i in seen])
    start = min(log.times[0] for log in shop.logs.values())
    room = (split - start).days - m.MIN_HISTORY_DAYS
    x, y, who = shop.backtest(split, sorted({h for h in (*m.HORIZONS, holdout_days) if h <= room}))
    position = np.asarray(seen)
    rng = np.random.default_rng(0)
    aucs: dict[str, list[float]] = defaultdict(list)
    for _ in range(splits):
        order = rng.permutation(len(seen))
        train, test = order[: len(order) // 2], order[len(order) // 2 :]
        rows = np.isin(who, position[train])
        for name in names:
            inputs, c = CANDIDATES[name]
            model = estimator(inputs, c).fit(x[rows], y[rows])
            aucs[name].append(float(roc_auc_score(lapsed[test], model.predict_proba(now[test])[:, 1])))
        aucs["recency"].append(float(roc_auc_score(lapsed[test], now[test, 0])))
        for name in names:  # not shippable: fitted to the training half's own labels after the split
            inputs, c = CANDIDATES[name]
            hindsight = estimator(inputs, c).fit(now[train], lapsed[train])
            aucs[f"hindsight {name}"].append(
                float(roc_auc_score(lapsed[test], hindsight.predict_proba(now[test])[:, 1]))
            )
    return aucs


def main(argv: list[str]) -> None:
    day, holdout = argv[0].split("/")
    names = argv[1].split(",") if len(argv) > 1 else list(CANDIDATES)
    splits = int(argv[2]) if len(argv) > 2 else 20
    aucs = run(datetime.fromisoformat(day).replace(tzinfo=UTC), int(holdout), names, splits)
    first = np.asarray(aucs[names[0]])
    for name, values in aucs.items():
        v = np.asarray(values)
        d = v - first
        print(
            f"{argv[0]} {name:26s} {v.mean():.4f} ± {v.std():.4f}  minus {names[0]} {d.mean():+.4f} "
            f"(se {d.std() / math.sqrt(len(d)):.4f}), higher in {(d > 0).mean():.0%}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
