"""Training and evaluation of the bundled models (``nextbest models …``); dev-only, never shipped.

Transactions come as CSV (``customer_id,timestamp,amount`` and optionally ``product_id``, ``quantity``,
``order_id``; rows sharing an ``order_id`` are one order). Every customer's orders become an
:class:`~nextbest.core.features.OrderLog`, and features are computed from the same summary a profile keeps
(:mod:`nextbest.core.features`), so what is trained here is what decide scores.

Labels come from a temporal backtest strictly inside the data before ``--as-of``: at cut-offs ``c`` every
28 days, for horizons ``h`` with ``c + h <= as_of``, each customer who had ordered before ``c`` is an
example with the features as of ``c``, the horizon ``h`` and the label "no order in ``[c, c + h)``".
Nothing at or after ``as_of`` is read. Stacking many cut-offs teaches the model customers of every age,
which is what lets it generalise past the tenure the data happens to have at ``as_of``.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from nextbest.core.features import FEATURES, OrderLog, features
from nextbest.decide.scoring import FORMAT, MANIFEST, PROPENSITY_DAYS, installed_versions, sha256_of

TRAINING_LIBRARIES = ("numpy", "scipy", "scikit-learn")

HORIZONS = (30, 60, 90, 180, 270, 365)
STEP_DAYS = 28
MIN_HISTORY_DAYS = 28
MAX_CUTOFFS = 12
MAX_ITEMS = 1000
TIMING_FILE = "timing.npz"
RECOMMENDER_FILE = "recommendations.npz"
ESTIMATOR = "logistic regression on log inputs with pairwise terms"
MODEL_INPUTS = {"recency_days": "log", "orders": "log", "horizon_days": "log", "log_mean_order_value": "as is"}
"""The columns of the feature vector the purchase-timing model reads, and how.

Chosen on backtests, not on the evaluation holdout: a logistic regression on log recency, log frequency,
log horizon and log order value with their pairwise products. Its few coefficients extrapolate smoothly to
customers older and quieter than any seen at training cut-offs, where trees (tried: gradient boosting,
with and without monotone constraints) predict a constant and lose the ranking. The richer features
(intervals, rhythm, windows) stay in the feature vector for models that can use them.

Issue 16 asked whether it generalises. On customers it has not seen (:func:`generalisation`) it keeps its
lead over recency and BG/NBD. Dropping order value looked slightly better there (+0.002 to +0.005 AUC
depending on the random halves, within their noise) and was 0.003 worse on the ten-times-larger CDNOW log
held out for the check; adding tenure, recent-window counts or stronger regularisation changed nothing
beyond that noise. Order quantities (units per order, price per unit, multi-unit share…) and gap regularity,
tried the same way (``docs/experiments/lapse_quantity.py``), lost to these inputs on the sample's halves, and
even fitted to the holdout's labels added nothing, so profiles keep no quantities. README, "Models", has the
figures."""

ALTERNATIVES = {"without_order_value": {k: v for k, v in MODEL_INPUTS.items() if k != "log_mean_order_value"}}
"""Other inputs :func:`generalisation` scores on the same halves, so a change is judged paired, not alone."""


@dataclass(frozen=True)
class Transaction:
    customer_id: str
    at: datetime
    amount: Decimal
    product_id: str | None = None
    quantity: int = 1
    order_id: str | None = None


# -- reading and writing transactions ------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """ISO dates or date-times; a time without offset is UTC."""
    text = text.strip()
    value = datetime.fromisoformat(text) if ("T" in text or " " in text or len(text) > 10) else None
    if value is None:
        value = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_transactions(path: Path) -> list[Transaction]:
    """The rows of a transactions CSV; a value that does not parse is refused naming the file, line and column."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"customer_id", "timestamp", "amount"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        rows = []
        for row in reader:
            try:
                rows.append(_transaction(row))
            except _BadValue as bad:
                raise ValueError(f"{path}, line {reader.line_num}: {bad}") from bad.__cause__
        return rows


class _BadValue(Exception):
    """A CSV value that does not parse: its column, the value and what it should look like."""


def _transaction(row: dict[str, str]) -> Transaction:
    def value(column: str, parse: Any, expected: str) -> Any:
        text = row.get(column) or ""
        try:
            return parse(text)
        except (ArithmeticError, ValueError, TypeError) as error:
            raise _BadValue(f"{column} {text!r} is not {expected}") from error

    amount = value("amount", Decimal, "a decimal number like 12.50")
    if not amount.is_finite():
        raise _BadValue(f"amount {row['amount']!r} is not a decimal number like 12.50")
    return Transaction(
        customer_id=row["customer_id"],
        at=value("timestamp", parse_time, "an ISO 8601 date or date-time like 2026-11-02T09:00:00Z"),
        amount=amount,
        product_id=row.get("product_id") or None,
        quantity=value("quantity", lambda t: int(t or 1), "a whole number"),
        order_id=row.get("order_id") or None,
    )


def write_transactions(path: Path, transactions: Iterable[Transaction]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "timestamp", "amount", "product_id", "quantity", "order_id"])
        for t in transactions:
            writer.writerow(
                [t.customer_id, t.at.isoformat(), str(t.amount), t.product_id or "", t.quantity, t.order_id or ""]
            )
    return path


def cdnow_transactions() -> list[Transaction]:
    """The CDNOW sample (``customer_id customer_seq YYYYMMDD quantity amount``), one order per line."""
    from nextbest_lab.datasets import cdnow_sample

    out = []
    for n, line in enumerate(cdnow_sample().read_text().splitlines()):
        parts = line.split()
        if len(parts) != 5:
            continue
        customer, _, day, quantity, amount = parts
        at = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC)
        out.append(Transaction(customer, at, Decimal(amount), None, int(quantity), f"cdnow-{n}"))
    return out


def simulator_transactions(customers: int = 2000, seed: int = 7, days: int = 5) -> list[Transaction]:
    """The demo simulator's orders, one row per line item: what the recommender learns the catalogue from."""
    from nextbest_lab.simulator import simulate

    out = []
    for event in simulate(customers=customers, seed=seed, days=days).events:
        detail = event["Detail"]
        if event["DetailType"] != "order.placed" or not isinstance(detail.get("items"), list):
            continue
        customer = detail.get("customer_id") or detail.get("anonymous_id")
        for item in detail["items"]:
            amount = Decimal(item["unit_price"]) * item["quantity"]
            out.append(
                Transaction(customer, event["at"], amount, item["product_id"], item["quantity"], detail["order_id"])
            )
    return out


def order_logs(transactions: Iterable[Transaction]) -> dict[str, OrderLog]:
    """Each customer's orders (rows of one ``order_id`` summed into one order at its first time)."""
    orders: dict[tuple[str, str], tuple[datetime, Decimal]] = {}
    for n, t in enumerate(transactions):
        key = (t.customer_id, t.order_id or f"row-{n}")
        at, amount = orders.get(key, (t.at, Decimal(0)))
        orders[key] = (min(at, t.at), amount + t.amount)
    per_customer: dict[str, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for (customer, _), order in orders.items():
        per_customer[customer].append(order)
    return {c: OrderLog(o) for c, o in sorted(per_customer.items())}


# -- the backtest -------------------------------------------------------------------------------------


@dataclass
class Examples:
    x: np.ndarray
    y: np.ndarray
    cutoff: np.ndarray
    horizon: np.ndarray
    customer: np.ndarray
    """Each example's customer, as its position in the ``logs`` the backtest read (to split by customer)."""


def backtest(logs: dict[str, OrderLog], as_of: datetime, horizons: Sequence[int]) -> Examples:
    """Examples from cut-offs ``c`` with ``c + h <= as_of``; label 1 = no order in ``[c, c + h)``."""
    start = min(log.times[0] for log in logs.values() if log.times)
    rows, labels, cutoffs, hs, who = [], [], [], [], []
    for h in horizons:
        cutoff = as_of - timedelta(days=h)
        for _ in range(MAX_CUTOFFS):
            if cutoff < start + timedelta(days=MIN_HISTORY_DAYS):
                break
            for position, log in enumerate(logs.values()):
                history = log.as_of(cutoff)
                if history.order_count == 0:
                    continue
                rows.append([*features(history, cutoff), float(h)])
                labels.append(int(log.count_between(cutoff, cutoff + timedelta(days=h)) == 0))
                cutoffs.append(cutoff.timestamp())
                hs.append(h)
                who.append(position)
            cutoff -= timedelta(days=STEP_DAYS)
    if not rows:
        raise ValueError(
            f"no cut-off has {MIN_HISTORY_DAYS} days of history and a whole horizon before {as_of.date()}; "
            "use a later --as-of or a shorter --horizon-days"
        )
    return Examples(np.asarray(rows), np.asarray(labels), np.asarray(cutoffs), np.asarray(hs), np.asarray(who))


def feasible_horizons(logs: dict[str, OrderLog], as_of: datetime, horizon_days: int) -> list[int]:
    start = min(log.times[0] for log in logs.values() if log.times)
    room = (as_of - start).days - MIN_HISTORY_DAYS
    return sorted({h for h in (*HORIZONS, horizon_days) if h <= room})


def timing_model(inputs: dict[str, str] | None = None) -> Any:
    """P(no order within ``horizon_days``) from the model inputs (``MODEL_INPUTS`` unless ``inputs`` says)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

    inputs = MODEL_INPUTS if inputs is None else inputs
    names = [*FEATURES, "horizon_days"]
    logged = [names.index(n) for n, how in inputs.items() if how == "log"]
    kept = [names.index(n) for n, how in inputs.items() if how != "log"]
    return Pipeline(
        [
            (
                "inputs",
                ColumnTransformer(
                    [("log", FunctionTransformer(np.log1p), logged), ("kept", "passthrough", kept)],
                    remainder="drop",
                ),
            ),
            ("scale", StandardScaler()),
            ("pairs", PolynomialFeatures(2, include_bias=False)),
            ("rescale", StandardScaler()),
            ("logit", LogisticRegression(C=1.0, max_iter=2000)),
        ]
    )


def export_timing(model: Any) -> dict[str, Any]:
    """The fitted arrays :class:`nextbest.decide.scoring.Logit` scores with (numpy only, no scikit-learn)."""
    from nextbest.decide.scoring import Logit

    names = [*FEATURES, "horizon_days"]
    arrays = {
        "log_columns": np.asarray([names.index(n) for n, how in MODEL_INPUTS.items() if how == "log"]),
        "kept_columns": np.asarray([names.index(n) for n, how in MODEL_INPUTS.items() if how != "log"], dtype=np.intp),
        "mean": model["scale"].mean_,
        "scale": model["scale"].scale_,
        "powers": model["pairs"].powers_,
        "mean2": model["rescale"].mean_,
        "scale2": model["rescale"].scale_,
        "coef": model["logit"].coef_[0],
        "intercept": model["logit"].intercept_[0],
    }
    probe = np.asarray([[*[float(v) for v in range(1, len(FEATURES) + 1)], h] for h in (30.0, 90.0, 365.0)])
    if not np.allclose(Logit(arrays).predict_proba(probe), model.predict_proba(probe), atol=1e-9):
        raise AssertionError("the exported timing model does not reproduce scikit-learn's probabilities")
    return arrays


def fit_timing(logs: dict[str, OrderLog], as_of: datetime, horizon_days: int) -> tuple[Any, Examples, list[int]]:
    horizons = feasible_horizons(logs, as_of, horizon_days)
    if PROPENSITY_DAYS not in horizons:
        raise ValueError(f"the data before {as_of.date()} is too short for even a {PROPENSITY_DAYS}-day backtest")
    examples = backtest(logs, as_of, horizons)
    model = timing_model().fit(examples.x, examples.y)
    return model, examples, horizons


# -- recommendations ----------------------------------------------------------------------------------


def fit_recommender(transactions: Iterable[Transaction], max_items: int = MAX_ITEMS) -> dict[str, Any]:
    """Item-to-item cosine similarity of who bought what, and popularity (distinct buyers) for cold starts."""
    buyers: dict[str, set[str]] = defaultdict(set)
    for t in transactions:
        if t.product_id:
            buyers[t.product_id].add(t.customer_id)
    items = sorted(buyers, key=lambda i: (-len(buyers[i]), i))[:max_items]
    customers = sorted({c for i in items for c in buyers[i]})
    column = {c: n for n, c in enumerate(customers)}
    matrix = np.zeros((len(items), len(customers)), dtype=np.float64)
    for r, item in enumerate(items):
        for c in buyers[item]:
            matrix[r, column[c]] = 1.0
    co = matrix @ matrix.T
    norms = np.sqrt(np.diag(co))
    similarity = co / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(similarity, 0.0)
    popularity = matrix.sum(axis=1)
    return {"items": items, "similarity": similarity.astype(np.float32), "popularity": popularity.astype(np.float32)}


# -- training -----------------------------------------------------------------------------------------


def train(
    transactions: Path,
    as_of: datetime,
    horizon_days: int,
    out: Path,
    products: Path | None = None,
) -> dict[str, Any]:
    """Train the purchase-timing model and the recommender; write their arrays and the manifest."""
    txns = [t for t in read_transactions(transactions) if t.at < as_of]
    if not txns:
        raise ValueError(f"{transactions}: no transaction before {as_of.date()}")
    logs = order_logs(txns)
    model, examples, horizons = fit_timing(logs, as_of, horizon_days)
    product_source = products or transactions
    recommender = fit_recommender(txns if products is None else read_transactions(products))
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("*.joblib"), *out.glob("*.npz")]:
        stale.unlink()
    write_arrays(out / TIMING_FILE, export_timing(model))
    write_arrays(out / RECOMMENDER_FILE, {**recommender, "items": np.asarray(recommender["items"], dtype=str)})
    manifest = {
        "format": FORMAT,
        "created_by": "nextbest models train",
        "libraries": installed_versions(),
        "features": [*FEATURES, "horizon_days"],
        "training": {
            "transactions": {"name": transactions.name, "sha256": sha256_of(transactions)},
            "products": {"name": product_source.name, "sha256": sha256_of(product_source)},
            "as_of": as_of.date().isoformat(),
            "window": [min(t.at for t in txns).date().isoformat(), as_of.date().isoformat()],
            "horizons_days": horizons,
            "customers": len(logs),
            "examples": len(examples.y),
            "note": _label_note(horizon_days, horizons),
            "libraries": {lib: version(lib) for lib in TRAINING_LIBRARIES},
        },
        "models": _model_files(horizon_days, recommender),
        "priors": _priors(examples, horizons, horizon_days),
        "metrics": {"backtest_in_sample": _metrics(examples.y, model.predict_proba(examples.x)[:, 1])},
        "files": {
            name: {"sha256": sha256_of(out / name), "bytes": (out / name).stat().st_size}
            for name in (TIMING_FILE, RECOMMENDER_FILE)
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def write_arrays(path: Path, arrays: dict[str, Any]) -> Path:
    """An ``.npz`` archive decide reads without pickle, the same bytes whenever the arrays are the same.

    ``np.savez`` stamps each member with the current time, so the file (and its hash in the manifest) would
    change on every run: members are written here with a fixed time, and stored (zlib's output may differ
    between builds); ``allow_pickle=False`` refuses an array of objects here as numpy refuses it at load.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return path


def _label_note(horizon_days: int, horizons: list[int]) -> str:
    note = "label = no order in [cut-off, cut-off + horizon), all strictly before as_of"
    if horizon_days in horizons:
        return note
    return f"{note}; {horizon_days} days exceeds the data, scored as the longest horizon trained"


def _model_files(horizon_days: int, recommender: dict[str, Any]) -> dict[str, Any]:
    """The manifest's models: lapse and propensity both read the timing model, at their own horizon."""
    return {
        "lapse": {"file": TIMING_FILE, "horizon_days": horizon_days, "estimator": ESTIMATOR},
        "propensity": {"file": TIMING_FILE, "horizon_days": PROPENSITY_DAYS, "estimator": ESTIMATOR},
        "recommendations": {"file": RECOMMENDER_FILE, "items": len(recommender["items"])},
    }


def _priors(examples: Examples, horizons: list[int], horizon_days: int) -> dict[str, float]:
    """Base rates in the training examples: lapse at the trained horizon nearest ``horizon_days``, and purchase
    within ``PROPENSITY_DAYS``."""
    nearest = min(horizons, key=lambda h: abs(h - horizon_days))
    lapse = float(examples.y[examples.horizon == nearest].mean())
    propensity = 1.0 - float(examples.y[examples.horizon == PROPENSITY_DAYS].mean())
    return {"lapse": round(lapse, 6), "propensity": round(propensity, 6)}


# -- scoring a file -----------------------------------------------------------------------------------


def score_file(model_dir: Path, transactions: Path, as_of: datetime, out: Path) -> int:
    """``customer_id,lapse_risk,purchase_propensity`` for every customer seen before ``as_of``."""
    from nextbest.decide.scoring import Models

    models = Models.load(model_dir)
    logs = order_logs(t for t in read_transactions(transactions) if t.at < as_of)
    customers = list(logs)
    lapse, propensity = predict(models.timing, [logs[c] for c in customers], as_of, models.horizon_days)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "lapse_risk", "purchase_propensity"])
        for c, lr, pp in zip(customers, lapse, propensity, strict=True):
            writer.writerow([c, f"{lr:.6f}", f"{pp:.6f}"])
    return len(customers)


def predict(model: Any, logs: Sequence[OrderLog], now: datetime, horizon_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Lapse risk at ``horizon_days`` and purchase propensity at 30 days, as :class:`Models` computes them."""
    rows = []
    for log in logs:
        f = features(log.as_of(now), now)
        rows += [[*f, float(horizon_days)], [*f, float(PROPENSITY_DAYS)]]
    p = model.predict_proba(np.asarray(rows))[:, 1]
    return p[0::2], 1.0 - p[1::2]


# -- BG/NBD (Fader, Hardie & Lee 2005) ----------------------------------------------------------------


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    @staticmethod
    def summary(logs: Iterable[OrderLog], now: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``x`` repeat purchase days, ``t_x`` last purchase and ``T`` age, in weeks since the first purchase.

        Purchases on one calendar day count once, as in the model's original CDNOW analysis.
        """
        xs, txs, ts = [], [], []
        for log in logs:
            days = sorted({t.date() for t in log.times if t < now})
            if not days:
                continue
            first = days[0]
            xs.append(len(days) - 1)
            txs.append((days[-1] - first).days / 7)
            ts.append((now.date() - first).days / 7)
        return np.asarray(xs, float), np.asarray(txs, float), np.asarray(ts, float)

    @classmethod
    def fit(cls, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> BgNbd:
        from scipy.optimize import minimize

        result = minimize(
            lambda p: -cls._log_likelihood(np.exp(p), x, tx, t).sum(),
            x0=np.zeros(4),
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8},
        )
        return cls(*np.exp(result.x))

    @staticmethod
    def _log_likelihood(params: np.ndarray, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        from scipy.special import betaln, gammaln

        r, alpha, a, b = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        alive = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            dropped = betaln(a + 1, b + x - 1) - betaln(a, b) + common - (r + x) * np.log(alpha + tx)
        dropped = np.where(x > 0, dropped, -np.inf)
        return np.logaddexp(alive, dropped)

    def _odds_dead(self, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = (self.a / (self.b + x - 1)) * ((self.alpha + t) / (self.alpha + tx)) ** (self.r + x)
        return np.where(x > 0, odds, 0.0)

    def p_alive(self, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + self._odds_dead(x, tx, t))

    def expected(self, weeks: float, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Expected purchases in the next ``weeks`` given each customer's history."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = weeks / (alpha + t + weeks)
        head = (a + b + x - 1) / (a - 1)
        body = 1 - ((alpha + t) / (alpha + t + weeks)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return head * body / (1.0 + self._odds_dead(x, tx, t))

    def p_none(self, weeks: float, x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """P(no purchase in the next ``weeks``): dead, or alive and silent (dropout follows purchases only)."""
        alive = self.p_alive(x, tx, t)
        return 1 - alive + alive * ((self.alpha + t) / (self.alpha + t + weeks)) ** (self.r + x)


# -- evaluation ---------------------------------------------------------------------------------------


def _metrics(y: np.ndarray, score: np.ndarray, probability: bool = True, bins: int = 10) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    out: dict[str, Any] = {
        "auc": round(float(roc_auc_score(y, score)), 4),
        "average_precision": round(float(average_precision_score(y, score)), 4),
        "positive_rate": round(float(np.mean(y)), 4),
        "n": len(y),
    }
    if probability:
        out["brier"] = round(float(brier_score_loss(y, score)), 4)
        edges = np.linspace(0, 1, bins + 1)
        which = np.clip(np.digitize(score, edges[1:-1]), 0, bins - 1)
        out["reliability"] = [
            {
                "bin": f"{edges[k]:.1f}-{edges[k + 1]:.1f}",
                "n": int((which == k).sum()),
                "predicted": round(float(score[which == k].mean()), 4),
                "observed": round(float(y[which == k].mean()), 4),
            }
            for k in range(bins)
            if (which == k).any()
        ]
    return out


def evaluate(transactions: list[Transaction], split: datetime, holdout_days: int) -> dict[str, Any]:
    """Train on everything before ``split``, score customers seen before it, and compare with what they
    did in ``[split, split + holdout_days)`` — next to recency alone and BG/NBD fitted on the same data.

    Lapse is "no purchase in the holdout"; propensity is "a purchase within 30 days of the split".
    """
    before = [t for t in transactions if t.at < split]
    logs = order_logs(before)
    customers = list(logs)
    model, examples, horizons = fit_timing(logs, split, holdout_days)
    all_logs = order_logs(transactions)
    end = split + timedelta(days=holdout_days)
    lapsed = np.asarray([int(all_logs[c].count_between(split, end) == 0) for c in customers])
    bought_30 = np.asarray(
        [int(all_logs[c].count_between(split, split + timedelta(days=PROPENSITY_DAYS)) > 0) for c in customers]
    )
    lapse, propensity = predict(model, [logs[c] for c in customers], split, holdout_days)
    recency = np.asarray([(split - logs[c].times[-1]).total_seconds() / 86_400 for c in customers])
    x, tx, t = BgNbd.summary((logs[c] for c in customers), split)
    bgnbd = BgNbd.fit(x, tx, t)
    weeks = holdout_days / 7
    expected = bgnbd.expected(weeks, x, tx, t)
    expected_30 = bgnbd.expected(PROPENSITY_DAYS / 7, x, tx, t)
    p_alive = bgnbd.p_alive(x, tx, t)
    return {
        "split": split.date().isoformat(),
        "holdout_days": holdout_days,
        "customers": len(customers),
        "training": {"examples": len(examples.y), "horizons_days": horizons},
        "bgnbd_params": {k: round(float(v), 4) for k, v in vars(bgnbd).items()},
        "lapse": {
            "model": _metrics(lapsed, lapse),
            "recency": _metrics(lapsed, recency, probability=False),
            "bgnbd_expected_purchases": _metrics(lapsed, -expected, probability=False),
            "bgnbd_p_no_purchase": _metrics(lapsed, bgnbd.p_none(weeks, x, tx, t)),
            "bgnbd_1_minus_p_alive": _metrics(lapsed, 1 - p_alive, probability=False),
        },
        "propensity_30d": {
            "model": _metrics(bought_30, propensity),
            "recency": _metrics(bought_30, -recency, probability=False),
            "bgnbd_expected_purchases": _metrics(bought_30, expected_30, probability=False),
            "bgnbd_p_purchase": _metrics(bought_30, 1 - bgnbd.p_none(PROPENSITY_DAYS / 7, x, tx, t)),
        },
    }


def generalisation(
    transactions: list[Transaction],
    split: datetime,
    holdout_days: int,
    splits: int = 20,
    seed: int = 0,
    alternatives: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Lapse AUC on customers the model never saw: ``splits`` random halves of the customers seen before
    ``split``; each time the model (and ``ALTERNATIVES``, and BG/NBD) learns from one half's data before
    ``split`` and scores the other half, whose lapse is "no purchase in ``[split, split + holdout_days)``".

    :func:`evaluate` scores the very customers the model trained on (on their earlier cut-offs), which
    flatters a model that memorises the shop; this is the figure to choose a model by. Halves are drawn with
    a fixed ``seed``, so a report is reproducible; the spread across splits is what a new shop of this size
    could expect, and the paired differences (same halves for every scorer) say whether a change helps.

    ``hindsight_ceiling`` is no model one could ship: the same estimator fitted to the training half's own
    labels from after ``split``, features as of ``split``. What it reaches is roughly what these inputs can
    tell about lapse in this holdout; a goal above it needs other information, not another estimator.
    """
    from sklearn.metrics import roc_auc_score

    logs = order_logs(t for t in transactions if t.at < split)
    customers = list(logs)
    all_logs = order_logs(transactions)
    end = split + timedelta(days=holdout_days)
    lapsed = np.asarray([int(all_logs[c].count_between(split, end) == 0) for c in customers])
    x_now = np.asarray([[*features(logs[c].as_of(split), split), float(holdout_days)] for c in customers])
    summary = np.column_stack(BgNbd.summary((logs[c] for c in customers), split))
    horizons = feasible_horizons(logs, split, holdout_days)
    examples = backtest(logs, split, horizons)
    scorers = {"model": MODEL_INPUTS, **(ALTERNATIVES if alternatives is None else alternatives)}
    names = [*scorers, "recency", "bgnbd_expected_purchases", "hindsight_ceiling"]
    aucs: dict[str, list[float]] = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    for _ in range(splits):
        order = rng.permutation(len(customers))
        train, test = order[: len(order) // 2], order[len(order) // 2 :]
        rows = np.isin(examples.customer, train)
        y = lapsed[test]
        for name, inputs in scorers.items():
            model = timing_model(inputs).fit(examples.x[rows], examples.y[rows])
            aucs[name].append(float(roc_auc_score(y, model.predict_proba(x_now[test])[:, 1])))
        aucs["recency"].append(float(roc_auc_score(y, x_now[test, 0])))
        bgnbd = BgNbd.fit(*summary[train].T)
        aucs["bgnbd_expected_purchases"].append(
            float(roc_auc_score(y, -bgnbd.expected(holdout_days / 7, *summary[test].T)))
        )
        hindsight = timing_model().fit(x_now[train], lapsed[train])
        aucs["hindsight_ceiling"].append(float(roc_auc_score(y, hindsight.predict_proba(x_now[test])[:, 1])))
    model = np.asarray(aucs["model"])
    return {
        "split": split.date().isoformat(),
        "holdout_days": holdout_days,
        "customers": len(customers),
        "splits": splits,
        "seed": seed,
        "lapse_auc": {
            name: {
                "mean": round(float(np.mean(v)), 4),
                "sd": round(float(np.std(v)), 4),
                "min": round(float(np.min(v)), 4),
                "max": round(float(np.max(v)), 4),
                "model_minus_this": round(float(np.mean(model - np.asarray(v))), 4),
                "model_wins": round(float(np.mean(model > np.asarray(v))), 4),
            }
            for name, v in aucs.items()
        },
        "per_split": {name: [round(a, 4) for a in v] for name, v in aucs.items()},
    }


def table(report: dict[str, Any]) -> list[tuple[str, str, float, float, float | None]]:
    """(target, scorer, AUC, AP, Brier) rows of an evaluation report."""
    return [
        (target, name, m["auc"], m["average_precision"], m.get("brier"))
        for target in ("lapse", "propensity_30d")
        for name, m in report[target].items()
    ]


# -- the default model set ----------------------------------------------------------------------------

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_AS_OF = "1998-07-01"
DEFAULT_HORIZON_DAYS = 90


def train_default(out: Path = DEFAULT_DIR, data: Path | None = None) -> dict[str, Any]:
    """The set ``make demo`` scores with, committed in ``models/`` (a test retrains it and compares hashes).

    Lapse and propensity learn from CDNOW — 18 months of real purchases; the simulator's few days hold
    no purchase rhythm to learn from. Recommendations learn from the simulator's orders, whose catalogue
    is the one the demo's shoppers browse (CDNOW has no product ids).
    """
    from nextbest_lab.datasets import CACHE

    data = data or CACHE
    cdnow = write_transactions(data / "cdnow.csv", cdnow_transactions())
    shop = write_transactions(data / "simulator-orders.csv", simulator_transactions())
    return train(cdnow, parse_time(DEFAULT_AS_OF), DEFAULT_HORIZON_DAYS, out, products=shop)
