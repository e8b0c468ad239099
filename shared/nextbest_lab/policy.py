"""A targeting policy learned from nextbest's own logs, and the gate that decides whether it goes live.

The question a message answers is not "will this customer buy?" but "will they buy *because* of it?". From
logged decisions (:class:`~nextbest_lab.ope.LoggedDecision`: context, the actions open, the action taken with
its propensity, the reward) this module learns, per customer, the action with the highest expected
*incremental* reward over sending nothing, and sends nothing when no action is worth its cost.

Per-arm reward models picked by their argmax are known to lose to "send the best single message to everyone"
on real campaign data: effects are small next to the noise, and a model of each arm's reward spends its fit on
who buys anyway. So, as in the DR-learner (Kennedy 2020) and doubly robust policy learning (Athey & Wager
2021):

1. **Pseudo-outcomes.** A strongly regularised ridge model per action, cross-fitted (each record predicted by
   models fitted on the other folds), gives q(x, a); the doubly robust score of every action at every record is
   Γ(a) = q(x, a) + 1[a = a_i] (r_i - q(x, a)) / p_i, unbiased for the action's reward whenever the logged
   propensities are right, whatever q's errors. Γ(a) - Γ(none) is each action's incremental reward.
2. **A small family of policies**, simplest first: the single best action for everyone, then regression trees
   of depth 1 and 2 (large leaves) and a ridge model of the incremental scores per action. Each is fitted on
   the other folds and valued on its held-out fold by DR (the mean of Σ_a π(a|x) Γ(a)): its cross-fitted value.
3. **The simplest member that cannot be told apart**: starting from the simplest, a more complex member replaces
   the choice only when its paired cross-fitted gain over it has a 95% lower bound above zero (the gate's own
   standard). On weak signal that is the best single action. (Breiman's one-standard-error rule, the simplest
   member within one standard error of the best, lets the best of several noisy members through: on
   Hillstrom-shaped logs, :mod:`nextbest_lab.hillstrom`, it kept trees fitted to heavy-tailed spend that lost to
   the best single e-mail by up to 38 cents a customer, a quarter of its value.)

The policy is stored as data (``policy.json``: the feature encoding and actions; ``policy.npz``: the arrays)
with a manifest hashed like the models' (:func:`nextbest.decide.scoring.verify`), and applied with numpy alone.
Every eligible action keeps an exploration floor so that the next round's logged propensities stay valid.

**The gate (champion/challenger).** A learned policy goes live only if the lower bound of its DR value minus the
current policy's, per record, paired, on held-out logs, is above zero: the current policy is the live policy
in the directory, or the logging policy when there is none (its value is what it earned, r_i). Held-out means
a separate log (``holdout``), or else the cross-fitted values (each record valued by a policy fitted without
it). The evidence goes into the manifest; a refused challenger is written beside the champion, never over it.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from nextbest.decide.scoring import FORMAT, MANIFEST, ModelError, installed_versions, read_arrays, sha256_of, verify

from nextbest_lab.ope import NONE, LoggedDecision, estimate

Reward = Literal["revenue", "conversion"]
FAMILY = ("best_single", "tree_depth_1", "tree_depth_2", "linear")
"""The policies tried, simplest first (:func:`simplest_told_apart` prefers the earliest)."""
SPEC_FILE, ARRAYS_FILE = "policy.json", "policy.npz"
TREE_ARRAYS = ("left", "right", "feature", "threshold", "value")
LINEAR_ARRAYS = ("coef", "intercept")
MAX_LEVELS = 30
"""A categorical context key keeps at most this many levels (the commonest); the others share one."""
MIN_LEVEL = 10
"""A level seen fewer times than this is one of the others: too rare to learn anything about."""
MIN_SUPPORT = 20
"""An action logged fewer times than this is never chosen (there is no evidence for it), only explored."""


# --- Contexts → features -------------------------------------------------------------------------------------


def flatten(context: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists are left out (no fixed meaning per position)."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        elif not isinstance(value, list | tuple):
            out[name] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Encoder:
    """Any context as numbers: numeric keys standardised (missing → the mean, with a missing indicator), other
    keys one-hot over their commonest levels. Fitted on the training log, stored as data in ``policy.json``."""

    numeric: list[str]
    mean: list[float]
    scale: list[float]
    missing: list[str]
    categorical: list[tuple[str, list[str]]]

    @classmethod
    def fit(cls, contexts: Sequence[Mapping[str, Any]]) -> Encoder:
        flat = [flatten(c) for c in contexts]
        keys = sorted({k for row in flat for k in row})
        numeric, mean, scale, missing, categorical = [], [], [], [], []
        for key in keys:
            values = [row.get(key) for row in flat]
            present = [v for v in values if v is not None]
            if present and all(_is_number(v) for v in present):
                column = np.asarray(present, dtype=float)
                numeric.append(key)
                mean.append(float(column.mean()))
                scale.append(float(column.std()) or 1.0)
                if len(present) < len(values):
                    missing.append(key)
            else:
                counts: dict[str, int] = {}
                for v in values:
                    counts[str(v)] = counts.get(str(v), 0) + 1
                common = sorted(counts, key=lambda level: (-counts[level], level))[:MAX_LEVELS]
                levels = sorted(level for level in common if counts[level] >= MIN_LEVEL)
                if len(levels) > 1 or (levels and counts[levels[0]] < len(values)):
                    categorical.append((key, levels))
        return cls(numeric, mean, scale, missing, categorical)

    @property
    def names(self) -> list[str]:
        return (
            self.numeric
            + [f"{k} is missing" for k in self.missing]
            + [f"{k} = {level}" for k, levels in self.categorical for level in levels]
        )

    def transform(self, contexts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        flat = [flatten(c) for c in contexts]
        columns: list[np.ndarray] = []
        for key, mu, sd in zip(self.numeric, self.mean, self.scale, strict=True):
            raw = np.array([row[key] if _is_number(row.get(key)) else np.nan for row in flat], dtype=float)
            columns.append(np.nan_to_num((raw - mu) / sd, nan=0.0))
        for key in self.missing:
            columns.append(np.array([0.0 if _is_number(row.get(key)) else 1.0 for row in flat]))
        for key, levels in self.categorical:
            seen = [str(row.get(key)) for row in flat]
            columns.extend(np.array([s == level for s in seen], dtype=float) for level in levels)
        return np.column_stack(columns) if columns else np.zeros((len(flat), 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            "mean": self.mean,
            "scale": self.scale,
            "missing": self.missing,
            "categorical": [[k, levels] for k, levels in self.categorical],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Encoder:
        categorical = [(str(k), [str(level) for level in levels]) for k, levels in data["categorical"]]
        return cls(list(data["numeric"]), list(data["mean"]), list(data["scale"]), list(data["missing"]), categorical)


# --- A log as arrays ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    """Logged decisions as arrays over one list of actions (``none`` last)."""

    records: list[LoggedDecision]
    actions: list[str]
    taken: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    """Net reward: conversion (0/1) or revenue, minus ``send_cost`` when something was sent."""
    eligible: np.ndarray
    """(records, actions): the action was open at the decision (a candidate, or ``none``)."""

    @classmethod
    def of(
        cls, records: Sequence[LoggedDecision], reward: Reward = "revenue", send_cost: float = 0.0, actions=()
    ) -> Log:
        if not records:
            raise ValueError("no logged decisions")
        names = [*sorted(({a for r in records for a in r.actions()} | set(actions)) - {NONE}), NONE]
        index = {a: i for i, a in enumerate(names)}
        eligible = np.zeros((len(records), len(names)), dtype=bool)
        for i, r in enumerate(records):
            eligible[i, [index[a] for a in r.actions()]] = True
        raw = np.array([r.reward for r in records], dtype=float)
        taken = np.array([index[r.action] for r in records])
        net = (raw > 0).astype(float) if reward == "conversion" else raw
        net = net - send_cost * (taken != index[NONE])
        return cls(list(records), names, taken, np.array([r.propensity for r in records]), net, eligible)

    @property
    def none(self) -> int:
        return len(self.actions) - 1

    def supported(self) -> np.ndarray:
        """Actions logged often enough to be chosen."""
        return np.bincount(self.taken, minlength=len(self.actions)) >= MIN_SUPPORT


def folds_of(records: Sequence[LoggedDecision], folds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, folds, size=len(records))


def pseudo_outcomes(log: Log, x: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Γ (records x actions): the doubly robust score of each action at each record, cross-fitted; 0 where
    the action was not open or never logged (no evidence: exploring it is counted as earning nothing)."""
    from sklearn.linear_model import RidgeCV

    fold = folds_of(log.records, folds, seed)
    q = np.zeros(log.eligible.shape)
    supported = log.supported()
    for f in range(folds):
        test = fold == f
        for a in np.flatnonzero(supported):
            train = (fold != f) & (log.taken == a)
            if train.sum() < MIN_SUPPORT or x.shape[1] == 0:
                q[test, a] = log.reward[train if train.any() else log.taken == a].mean()
                continue
            model = RidgeCV(alphas=np.logspace(-1, 4, 11)).fit(x[train], log.reward[train])
            q[test, a] = model.predict(x[test])
    gamma = q.copy()
    rows = np.arange(len(log.records))
    gamma[rows, log.taken] += (log.reward - q[rows, log.taken]) / log.propensity
    gamma[:, ~supported] = 0.0
    return np.where(log.eligible, gamma, 0.0)


def incremental(log: Log, gamma: np.ndarray) -> np.ndarray:
    """Each action's pseudo-outcome over sending nothing, or its own when nothing-sent was never logged."""
    if log.supported()[log.none]:
        return gamma - gamma[:, [log.none]]
    return gamma


# --- The family of policies: fitted with scikit-learn, kept and applied as arrays -----------------------------


@dataclass(frozen=True)
class Member:
    """One fitted policy: a score per action (its estimated incremental reward), linear or a tree per action."""

    kind: str
    arrays: dict[str, np.ndarray]

    def scores(self, x: np.ndarray) -> np.ndarray:
        if self.kind.startswith("tree"):
            return np.column_stack([self._tree(x, a) for a in range(len(self.arrays["left"]))])
        return x @ self.arrays["coef"].T + self.arrays["intercept"]

    def _tree(self, x: np.ndarray, a: int) -> np.ndarray:
        left, right, feature, threshold, value = (self.arrays[name][a] for name in TREE_ARRAYS)
        node = np.zeros(len(x), dtype=np.intp)
        for _ in range(left.shape[0]):
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = x[np.arange(len(x)), np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        return value[node]


def fit_member(kind: str, x: np.ndarray, tau: np.ndarray, eligible: np.ndarray, supported: np.ndarray) -> Member:
    """Regress each supported action's incremental pseudo-outcome on the features, where the action was open."""
    fitted = supported & (eligible.sum(axis=0) >= MIN_SUPPORT)
    if kind.startswith("tree") and x.shape[1]:
        fits = [_fit_tree(int(kind.rsplit("_", 1)[1]), x[eligible[:, a]], tau[eligible[:, a], a]) if fitted[a] else None
                for a in range(tau.shape[1])]  # fmt: skip
        size = max([len(f["left"]) for f in fits if f] + [1])
        return Member(kind, {name: np.stack([_pad(f, name, size) for f in fits]) for name in TREE_ARRAYS})
    coef, intercept = np.zeros((tau.shape[1], x.shape[1])), np.zeros(tau.shape[1])
    for a in np.flatnonzero(fitted):
        intercept[a] = tau[eligible[:, a], a].mean()
    if kind == "linear" and x.shape[1]:
        _fit_linear(x, tau, eligible, fitted, coef, intercept)
    return Member("linear" if kind == "linear" else "best_single", {"coef": coef, "intercept": intercept})


def _fit_linear(
    x: np.ndarray, tau: np.ndarray, eligible: np.ndarray, fitted: np.ndarray, coef: np.ndarray, intercept: np.ndarray
) -> None:
    """Ridge per action, its penalty chosen by generalised cross-validation; the actions open at the same records
    are fitted together (one decomposition of the features serves them all)."""
    from sklearn.linear_model import RidgeCV

    groups: dict[bytes, list[int]] = {}
    for a in np.flatnonzero(fitted):
        groups.setdefault(eligible[:, a].tobytes(), []).append(int(a))
    for actions in groups.values():
        rows = eligible[:, actions[0]]
        model = RidgeCV(alphas=np.logspace(0, 6, 7), alpha_per_target=True).fit(x[rows], tau[rows][:, actions])
        coef[actions] = np.asarray(model.coef_, dtype=float).reshape(len(actions), -1)
        intercept[actions] = model.intercept_


def _fit_tree(depth: int, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """A shallow regression tree with large leaves (an eighth of the records at least): few, well-estimated groups."""
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=max(MIN_SUPPORT, len(y) // 8), random_state=0)
    t = tree.fit(x, y).tree_
    return {
        "left": t.children_left.astype(np.int64),
        "right": t.children_right.astype(np.int64),
        "feature": t.feature.astype(np.int64),
        "threshold": t.threshold.astype(float),
        "value": t.value[:, 0, 0].astype(float),
    }


def _leaf(value: float) -> dict[str, np.ndarray]:
    return {
        "left": np.array([-1]),
        "right": np.array([-1]),
        "feature": np.array([-2]),
        "threshold": np.array([0.0]),
        "value": np.array([value]),
    }


def _pad(fit: dict[str, Any] | None, name: str, size: int) -> np.ndarray:
    column = (fit or _leaf(0.0))[name]
    filler = -1 if name in ("left", "right") else -2 if name == "feature" else 0.0
    return np.concatenate([column, np.full(size - len(column), filler, dtype=column.dtype)])


def choose(scores: np.ndarray, eligible: np.ndarray, chosen_from: np.ndarray, floor: float) -> np.ndarray:
    """Probabilities (records x actions): the best-scoring action among those open and supported gets the rest
    once every open action has its exploration floor (uniform when the floors alone would exceed 1)."""
    allowed = eligible & chosen_from
    masked = np.where(allowed, scores, -np.inf)
    best = masked.argmax(axis=1)
    nothing = ~allowed.any(axis=1)  # nothing supported is open: the first open action
    best[nothing] = eligible[nothing].argmax(axis=1)
    k = eligible.sum(axis=1, keepdims=True)
    f = np.minimum(floor, 1.0 / k)
    probs = np.where(eligible, f, 0.0)
    probs[np.arange(len(best)), best] += 1.0 - (f * k)[:, 0]
    return probs


# --- Learning: cross-fitted selection -----------------------------------------------------------------------


@dataclass
class Learned:
    """A policy: how contexts become features, the actions it knows (those it may choose: ``supported``), the
    fitted scores (each action's estimated incremental reward; ``none`` scores 0) and the exploration floor."""

    encoder: Encoder
    actions: list[str]
    supported: np.ndarray
    member: Member
    floor: float
    reward: Reward
    send_cost: float
    selection: dict[str, Any] = field(default_factory=dict)
    oof_values: np.ndarray | None = None
    """Per training record, the chosen kind's value from a policy fitted without the record's fold."""
    oof_single: np.ndarray | None = None
    """The same for the best single action (chosen without the record's fold): what the gate compares with when it
    has no held-out log, so that neither side is chosen on the records it is valued on."""
    training: Evidence | None = None
    """The training log and its pseudo-outcomes (what the gate reads when there is no held-out log)."""

    def probabilities(self, log: Log) -> np.ndarray:
        """The policy's probabilities over ``log``'s actions (records x actions)."""
        own = {a: i for i, a in enumerate(self.actions)}
        scores = self.member.scores(self.encoder.transform([r.context for r in log.records]))
        mapped = np.full(log.eligible.shape, -np.inf)
        chosen_from = np.zeros(len(log.actions), dtype=bool)
        for j, a in enumerate(log.actions):
            if a in own and self.supported[own[a]]:
                mapped[:, j] = scores[:, own[a]]
                chosen_from[j] = True
        return choose(mapped, log.eligible, chosen_from, self.floor)

    def __call__(self, record: LoggedDecision) -> dict[str, float]:
        """As an :data:`nextbest_lab.ope.Policy` (one record at a time)."""
        log = Log.of([record], self.reward, self.send_cost)
        return {a: float(p) for a, p in zip(log.actions, self.probabilities(log)[0], strict=True) if p > 0}


def learn(
    records: Sequence[LoggedDecision],
    reward: Reward = "revenue",
    *,
    send_cost: float = 0.0,
    floor: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> Learned:
    """Learn the targeting policy (see the module's docstring for the method)."""
    log = Log.of(records, reward, send_cost)
    encoder = Encoder.fit([r.context for r in records])
    x = encoder.transform([r.context for r in records])
    gamma = pseudo_outcomes(log, x, folds, seed)
    tau = incremental(log, gamma)
    supported = log.supported()
    values = _cross_fitted_values(log, x, gamma, tau, folds, seed + 1, floor)
    kind, selection = simplest_told_apart(values)
    member = fit_member(kind, x, tau, log.eligible, supported)
    selection |= {"features": encoder.names, "records": len(records), "folds": folds}
    training = Evidence(log, gamma, {})
    return Learned(
        encoder, log.actions, supported, member, floor, reward, send_cost, selection, values[kind],
        values[FAMILY[0]], training,
    )  # fmt: skip


def _cross_fitted_values(
    log: Log, x: np.ndarray, gamma: np.ndarray, tau: np.ndarray, folds: int, seed: int, floor: float
) -> dict[str, np.ndarray]:
    """Per record and family member: DR value Σ_a π(a|x) Γ(a) of the member fitted without the record's fold."""
    fold = folds_of(log.records, folds, seed)
    supported = log.supported()
    values = {kind: np.zeros(len(log.records)) for kind in FAMILY}
    for f in range(folds):
        train, test = fold != f, fold == f
        for kind in FAMILY:
            member = fit_member(kind, x[train], tau[train], log.eligible[train], supported)
            probs = choose(member.scores(x[test]), log.eligible[test], supported, floor)
            values[kind][test] = (probs * gamma[test]).sum(axis=1)
    return values


def simplest_told_apart(values: Mapping[str, np.ndarray], alpha: float = 0.05) -> tuple[str, dict[str, Any]]:
    """Walk the members simplest first; one replaces the current choice only when the lower bound of its paired
    gain over it (cross-fitted, per record) is above zero."""
    means = {kind: float(v.mean()) for kind, v in values.items()}
    best = max(means, key=lambda kind: means[kind])
    chosen = next(iter(values))
    table: dict[str, dict[str, Any]] = {}
    for kind, v in values.items():
        gap = values[best] - v
        se = float(gap.std(ddof=1) / math.sqrt(len(gap))) if len(gap) > 1 else math.inf
        table[kind] = {"value": means[kind], "below_best": means[best] - means[kind], "paired_se": se}
        if kind != chosen:
            gain = paired(v, values[chosen], alpha)
            table[kind] |= {"against": chosen, "gain": gain}
            if gain[1] > 0:
                chosen = kind
    return chosen, {"chosen": chosen, "best": best, "cross_fitted": table}


# --- Evaluation: DR and SNIPW against the baselines ----------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Per-record DR values of the policies compared on one log, with the log's arrays."""

    log: Log
    gamma: np.ndarray
    policies: dict[str, np.ndarray]
    """Name -> probabilities (records x actions)."""

    def dr_terms(self, name: str) -> np.ndarray:
        if name == "logging policy":
            return self.log.reward
        return (self.policies[name] * self.gamma).sum(axis=1)

    def estimates(self, name: str, alpha: float = 0.05) -> dict[str, Any]:
        log = self.log
        if name == "logging policy":
            z = NormalDist().inv_cdf(1 - alpha / 2)
            mean, se = float(log.reward.mean()), float(log.reward.std(ddof=1) / math.sqrt(len(log.reward)))
            return {"on_policy": [mean, mean - z * se, mean + z * se]}
        probs = self.policies[name]
        rows = np.arange(len(log.records))
        found = estimate(log.reward, probs[rows, log.taken] / log.propensity, alpha=alpha)
        dr = paired(self.dr_terms(name), np.zeros(len(rows)), alpha)
        return {"dr": dr, "snipw": [found["snipw"].value, found["snipw"].lower, found["snipw"].upper]}

    def difference(self, name: str, baseline: str, alpha: float = 0.05) -> list[float]:
        return paired(self.dr_terms(name), self.dr_terms(baseline), alpha)


def paired(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> list[float]:
    """[mean, lower, upper] of a - b record by record (normal interval on the paired differences)."""
    d = a - b
    z = NormalDist().inv_cdf(1 - alpha / 2)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    mean = float(d.mean())
    return [mean, mean - z * se, mean + z * se]


def baselines(log: Log) -> dict[str, np.ndarray]:
    """Send nothing; and each single action to everyone it is open to (nothing to the others)."""
    out = {}
    for j, a in enumerate(log.actions):
        if not log.eligible[:, j].any():
            continue
        one = np.zeros(log.eligible.shape)
        one[:, j] = log.eligible[:, j]
        one[~log.eligible[:, j], log.none] = 1.0
        out["send nothing" if a == NONE else f"{a} to everyone"] = one
    return out


def best_single(log: Log, gamma: np.ndarray, floor: float) -> tuple[str, np.ndarray]:
    """The single action for everyone with the highest DR value on ``log``, explored with ``floor`` as a learned
    policy is (so that a learned policy that is that action compares equal to it): its name and DR terms."""
    every = np.ones(len(log.actions), dtype=bool)
    found = {
        name: (choose(one, log.eligible, every, floor) * gamma).sum(axis=1) for name, one in baselines(log).items()
    }
    name = max(found, key=lambda n: float(found[n].mean()))
    return name, found[name]


def compare(
    records: Sequence[LoggedDecision], policy: Learned, *, folds: int = 5, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """DR (with SNIPW beside it) of the learned policy, the logging policy, sending nothing and each single action
    for everyone, on ``records``, and the learned policy's paired DR difference from each."""
    evidence = evidence_on(records, policy, folds=folds, seed=seed)
    rows: dict[str, Any] = {}
    for name in ["learned policy", "logging policy", *(p for p in evidence.policies if p != "learned policy")]:
        rows[name] = evidence.estimates(name, alpha)
        if name != "learned policy":
            rows[name]["learned_minus_this_dr"] = evidence.difference("learned policy", name, alpha)
    return {"records": len(records), "reward": policy.reward, "send_cost": policy.send_cost, "policies": rows}


def evidence_on(records: Sequence[LoggedDecision], policy: Learned, *, folds: int = 5, seed: int = 0) -> Evidence:
    log = Log.of(records, policy.reward, policy.send_cost, policy.actions)
    x = Encoder.fit([r.context for r in records]).transform([r.context for r in records])
    gamma = pseudo_outcomes(log, x, folds, seed)
    return Evidence(log, gamma, {"learned policy": policy.probabilities(log), **baselines(log)})


# --- Stored as data, verified like the models -----------------------------------------------------------------


def save(
    learned: Learned,
    directory: Path,
    *,
    training: Mapping[str, Any],
    gate: Mapping[str, Any],
    send_window_hours: float = 12.0,
) -> dict[str, Any]:
    """``policy.json`` (encoding, actions, floor, how long decide may wait for the customer's best hour),
    ``policy.npz`` (arrays) and the manifest naming both with their hash (what decide checks at cold start,
    ``nextbest.decide.live``)."""
    from nextbest_lab.models import write_arrays

    directory.mkdir(parents=True, exist_ok=True)
    write_arrays(directory / ARRAYS_FILE, {**learned.member.arrays, "supported": learned.supported})
    spec = {
        "kind": learned.member.kind,
        "actions": learned.actions,
        "encoder": learned.encoder.to_json(),
        "floor": learned.floor,
        "reward": learned.reward,
        "send_cost": learned.send_cost,
        "send_window_hours": send_window_hours,
    }
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    manifest = {
        "format": FORMAT,
        "created_by": "nextbest policy learn",
        "libraries": installed_versions(),
        "models": {"policy": {"file": ARRAYS_FILE, "kind": learned.member.kind}, "policy_spec": {"file": SPEC_FILE}},
        "training": dict(training),
        "selection": learned.selection,
        "gate": dict(gate),
        "files": {
            name: {"sha256": sha256_of(directory / name), "bytes": (directory / name).stat().st_size}
            for name in (ARRAYS_FILE, SPEC_FILE)
        },
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load(directory: Path) -> Learned:
    """The policy in ``directory``, once its manifest's hashes and numpy version check (else :class:`ModelError`)."""
    manifest = verify(directory)
    if "policy" not in (manifest.get("models") or {}):
        raise ModelError(f"{directory}: not a policy (no 'policy' in the manifest's models)")
    spec = json.loads((directory / SPEC_FILE).read_text())
    kind = spec["kind"]
    arrays = read_arrays(
        directory / ARRAYS_FILE, ("supported", *(TREE_ARRAYS if kind.startswith("tree") else LINEAR_ARRAYS))
    )
    supported = np.asarray(arrays.pop("supported"), dtype=bool)
    member = Member(kind, {name: np.asarray(value) for name, value in arrays.items()})
    return Learned(
        Encoder.from_json(spec["encoder"]),
        list(spec["actions"]),
        supported,
        member,
        float(spec["floor"]),
        spec["reward"],
        float(spec["send_cost"]),
        manifest.get("selection", {}),
    )


def champion_in(directory: Path) -> Learned | None:
    """The live policy in ``directory``: one the gate promoted or a person pinned (a refused first policy is not
    live)."""
    from nextbest.decide.live import is_live

    if not (directory / MANIFEST).is_file():
        return None
    manifest = verify(directory)
    return load(directory) if is_live(manifest) else None


# --- The gate -------------------------------------------------------------------------------------------------


def gate(
    challenger: np.ndarray,
    champion: np.ndarray,
    *,
    champion_name: str,
    evidence: str,
    single: tuple[str, np.ndarray] | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Promote only if the lower bound of the paired DR difference (challenger - champion) is above zero, and the
    challenger does not lose to the best single action for everyone (``single``: its name and DR terms, with the
    same exploration). The second rule matters when the champion is weak (a uniform randomised log's logging
    policy): beating it proves little, and a policy that earns less than one message sent to everyone (which any
    marketer can run without a model) has no business going live."""
    difference = paired(challenger, champion, alpha)
    promoted = bool(difference[1] > 0)
    verdict = "beats" if promoted else "does not beat"
    reason = (
        f"the learned policy {verdict} the {champion_name}: DR difference {difference[0]:.6g} per decision, "
        f"{1 - alpha:.0%} interval [{difference[1]:.6g}, {difference[2]:.6g}] on {evidence}"
    )
    if not promoted:
        reason += "; the lower bound must be above 0"
    against_single: dict[str, Any] = {}
    if single is not None:
        name, values = single
        against = paired(challenger, values, alpha)
        against_single = {"name": name, "difference_dr": against}
        if promoted and against[0] < 0:
            promoted = False
            reason += (
                f"; but it loses to {name} (the best single action on the same log): DR difference {against[0]:.6g} "
                f"per decision, {1 - alpha:.0%} interval [{against[1]:.6g}, {against[2]:.6g}]"
            )
    return {
        "promoted": promoted,
        "best_single": against_single,
        "champion": champion_name,
        "evidence": evidence,
        "records": len(challenger),
        "challenger_dr": paired(challenger, np.zeros(len(challenger)), alpha),
        "champion_dr": paired(champion, np.zeros(len(champion)), alpha),
        "difference_dr": difference,
        "rule": "promote when the lower bound of the paired DR difference, challenger minus champion, is above 0 "
        "and the challenger's DR value is not below the best single action's (with the same exploration floor)",
        "reason": reason,
    }


@dataclass(frozen=True)
class Outcome:
    manifest: dict[str, Any]
    written_to: Path
    live: Path | None
    """Where the live policy is now (None: no learned policy is live; the logging policy stays)."""


def learn_and_gate(
    records: Sequence[LoggedDecision],
    out: Path,
    *,
    reward: Reward = "revenue",
    send_cost: float = 0.0,
    floor: float = 0.01,
    holdout: Sequence[LoggedDecision] | None = None,
    training: Mapping[str, Any] | None = None,
    folds: int = 5,
    seed: int = 0,
    send_window_hours: float = 12.0,
) -> Outcome:
    """Learn a challenger, gate it against the live policy in ``out`` (or the logging policy) and write it: over
    the champion when promoted (the champion moves to ``out/previous``), beside it (``out/challenger``) if not."""
    learned = learn(records, reward, send_cost=send_cost, floor=floor, folds=folds, seed=seed)
    champion = champion_in(out)
    name = "live policy" if champion else "logging policy"
    if holdout:
        evidence = evidence_on(holdout, learned, folds=folds, seed=seed)
        challenger_values, where = evidence.dr_terms("learned policy"), f"the held-out log ({len(holdout)} records)"
        single = best_single(evidence.log, evidence.gamma, learned.floor)
    else:
        assert learned.training is not None and learned.oof_values is not None and learned.oof_single is not None
        evidence = learned.training
        challenger_values, where = learned.oof_values, f"the training log, cross-fitted ({folds} folds)"
        single = ("the best single action (cross-fitted)", learned.oof_single)
    if champion:
        champion_values = (champion.probabilities(evidence.log) * evidence.gamma).sum(axis=1)
    else:
        champion_values = evidence.log.reward
    verdict = gate(challenger_values, champion_values, champion_name=name, evidence=where, single=single)
    target = out if verdict["promoted"] or champion is None else out / "challenger"
    if verdict["promoted"] and champion is not None:
        _retire(out)
    manifest = save(
        learned,
        target,
        training=training or {"records": len(records)},
        gate=verdict,
        send_window_hours=send_window_hours,
    )
    live = out if verdict["promoted"] or champion is not None else None
    return Outcome(manifest, target, live)


def _retire(out: Path) -> None:
    """Move the live policy's files to ``out/previous`` (what a rollback copies back)."""
    previous = out / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for name in (MANIFEST, SPEC_FILE, ARRAYS_FILE):
        (out / name).replace(previous / name)


def apply_file(learned: Learned, records: Sequence[LoggedDecision], out: Path) -> int:
    """One JSON line per decision: its id, the action the policy prefers and its probability for each open action
    (0 for those it never takes)."""
    log = Log.of(records, learned.reward, learned.send_cost)
    probs = learned.probabilities(log)
    with out.open("w") as lines:
        for record, row, open_ in zip(records, probs, log.eligible, strict=True):
            chosen = {a: round(float(p), 12) for a, p, o in zip(log.actions, row, open_, strict=True) if o}
            best = max(chosen, key=lambda a: chosen[a])
            lines.write(json.dumps({"decision_id": record.decision_id, "action": best, "probabilities": chosen}) + "\n")
    return len(records)


# --- Pin and roll back: a person moves the live pointer -----------------------------------------------------------

LIVE_FILES = (MANIFEST, SPEC_FILE, ARRAYS_FILE)


def version_of(directory: Path) -> str:
    """A policy's version as decide records it: the first 12 hex digits of its arrays' sha256."""
    return str(json.loads((directory / MANIFEST).read_text())["files"][ARRAYS_FILE]["sha256"][:12])


def promote(out: Path, source: Path, *, by: str, at: str, note: str = "") -> dict[str, Any]:
    """Pin the policy in ``source`` (``out/challenger``, a kept version, any learned policy) as the live one in
    ``out``, whatever the gate said: a person's call, recorded in the manifest (``live``: who, when, from where,
    why). It is verified first; the policy it replaces moves to ``out/previous`` (what :func:`rollback` restores)."""
    if not by:
        raise ValueError("say who pins the policy (--by)")
    manifest = verify(source)
    if "policy" not in (manifest.get("models") or {}):
        raise ModelError(f"{source}: not a policy (no 'policy' in the manifest's models)")
    staged = out / ".staged"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in LIVE_FILES:
        shutil.copyfile(source / name, staged / name)
    if (out / MANIFEST).is_file():
        _retire(out)
    for name in LIVE_FILES:
        (staged / name).replace(out / name)
    staged.rmdir()
    return _pin(out, {"pinned_by": by, "pinned_at": at, "from": str(source), "action": "promote", "note": note})


def rollback(out: Path, *, by: str, at: str, note: str = "") -> dict[str, Any]:
    """Make ``out/previous`` live again, and the policy it replaces the previous one (rolling back twice
    returns to where it started). Refused when there is no previous policy."""
    if not by:
        raise ValueError("say who rolls back (--by)")
    previous = out / "previous"
    if not (previous / MANIFEST).is_file():
        raise ModelError(f"{out}: no previous policy to roll back to ({previous} is empty)")
    verify(previous)
    staged = out / ".staged"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in LIVE_FILES:
        (out / name).replace(staged / name)
        (previous / name).replace(out / name)
        (staged / name).replace(previous / name)
    staged.rmdir()
    return _pin(out, {"pinned_by": by, "pinned_at": at, "from": str(previous), "action": "rollback", "note": note})


def _pin(out: Path, live: dict[str, Any]) -> dict[str, Any]:
    """Record who made the policy in ``out`` live (the manifest is not among the hashed files: editing it leaves
    the policy verifiable, and decide reads ``live`` as leave to ship a policy the gate did not promote)."""
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["live"] = live
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    verify(out)
    return manifest
