"""Offline policy evaluation: what another policy would have earned, estimated from logged decisions.

Every decision nextbest logs carries the probability with which the logging policy took the action it took
(``propensity``; the holdout's "would have sent" decisions log ``action = "none"``). That is enough to estimate
the value V(pi) = E[sum_a pi(a|x) r(x, a)] of a *different* policy pi — new caps, new priorities, a new model —
without running it, by reweighting the logged rewards:

- **IPW** (inverse propensity weighting; Horvitz & Thompson 1952): mean of w_i r_i with w_i = pi(a_i|x_i) / p_i.
  Unbiased when the propensities are right and pi only takes actions the logger could take; high variance when
  the weights are large.
- **SNIPW** (self-normalised IPW; Swaminathan & Joachims, "The self-normalized estimator for counterfactual
  learning", NeurIPS 2015): sum w_i r_i / sum w_i. Slightly biased, consistent, and much less variable when the
  weights' sample mean strays from 1 (which it always does a little).
- **DR** (doubly robust; Dudík, Langford & Li, "Doubly robust policy evaluation and learning", ICML 2011): a
  reward model q(x, a) predicts every action's reward (the *direct method*, DM) and IPW corrects its error on the
  logged action: mean of sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)). Unbiased if either the
  propensities or the model are right; its variance is that of IPW applied to the model's residuals. The model
  is **cross-fitted** (each record's prediction comes from a model fitted on the other folds, as in double
  machine learning, Chernozhukov et al. 2018) so a record's own reward never leaks into its correction term.

Intervals. Each estimate is a mean of per-record terms (IPW, DR) or a ratio of two means (SNIPW), so its
standard error follows from the sample variance of its influence values — w_i r_i, the DR term, and
w_i (r_i - V) / mean(w) for SNIPW (delta method) — and a 95% normal interval (CLT). This is what obp and the
papers above report. With rare rewards and heavy weights the sample variance can be underestimated (no reward
yet seen on a high-weight action), so ``n_bootstrap`` > 0 switches to percentile-bootstrap intervals over records
(Efron & Tibshirani 1993), which do not assume symmetry; the two agreeing is a useful check, neither fixes a
log that has simply seen too few rewards (look at ``effective_sample_size``).

numpy is used here (the CLI and reports, never the ingest or deliver functions); obp is not needed.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NONE = "none"
"""The action of sending nothing (what a holdout decision logs)."""


class LoggedDecision(BaseModel):
    """One line of the JSON-lines log that offline evaluation reads.

    ``propensity`` is the probability with which the logging policy chose ``action`` (including ``"none"``)
    given what it knew then; ``reward`` is what followed (a conversion 0/1, or attributed revenue).
    ``context`` is free-form: what a policy or reward model may look at (scores, segment, caps state…).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision_id: str
    context: dict[str, Any] = Field(default_factory=dict)
    candidates: list[str]
    action: str
    propensity: float = Field(gt=0, le=1)
    reward: float

    @model_validator(mode="after")
    def _action_is_possible(self) -> LoggedDecision:
        if self.action != NONE and self.action not in self.candidates:
            raise ValueError(f"action {self.action!r} is neither 'none' nor one of the candidates")
        return self

    def actions(self) -> list[str]:
        """Every action open at this decision: the candidates and sending nothing."""
        return self.candidates if NONE in self.candidates else [*self.candidates, NONE]


Policy = Callable[[LoggedDecision], Mapping[str, float]]
"""A policy maps a logged decision to probabilities over its actions (missing actions have probability 0)."""
RewardModel = Callable[[LoggedDecision], Mapping[str, float]]
"""A reward model maps a logged decision to the expected reward of each action (missing ones count as 0)."""


@dataclass(frozen=True)
class Estimate:
    value: float
    lower: float
    upper: float
    se: float


@dataclass(frozen=True)
class Evaluation:
    """Estimated value of the target policy, next to what the logging policy actually earned."""

    n: int
    logged_value: Estimate
    estimates: dict[str, Estimate]
    effective_sample_size: float
    mean_weight: float
    max_weight: float
    interval: Literal["normal", "bootstrap"]
    alpha: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, object]:
        """Flat, human-readable figures (for the CLI table)."""

        def show(e: Estimate) -> str:
            return f"{e.value:.6g}  [{e.lower:.6g}, {e.upper:.6g}]"

        out: dict[str, object] = {"records": self.n, "logged policy (on-policy mean)": show(self.logged_value)}
        out |= {name: show(e) for name, e in self.estimates.items() if name != "dm"}
        if "dm" in self.estimates:
            out["dm (model only, interval ignores its error)"] = show(self.estimates["dm"])
        out |= {
            "effective sample size": round(self.effective_sample_size, 1),
            "mean weight (should be ~1)": round(self.mean_weight, 4),
            "max weight": round(self.max_weight, 2),
            "interval": f"{1 - self.alpha:.0%} {self.interval}",
        }
        return out


def from_decision(
    decision: Mapping[str, Any], variants: Mapping[str, Sequence[str]], reward: float
) -> LoggedDecision | None:
    """A recorded decision (``Decision`` as JSON) as a logged round, or None if nothing was randomised in it.

    Arbitration between campaigns is deterministic (the highest value wins), so the only randomised choices
    are the chosen campaign's variant and its holdout: the actions are ``campaign:variant`` for each variant
    of the chosen campaign and ``"none"`` (held out), and the logged propensity is the one decide recorded.
    Policies that pick another variant, or hold out more or less, can be evaluated without bias; a policy
    that would pick a different campaign leaves the log's support, and only the reward model speaks for it
    (DR/DM), which ``evaluate`` flags through the weights. ``context`` carries the trigger, the customer's
    scores and each candidate's expected value (under ``scores``, as :mod:`nextbest_lab.policies` reads it).
    """
    campaign, action = decision.get("campaign_id"), decision.get("action")
    if action not in ("send", "holdout") or not campaign or not decision.get("propensity"):
        return None
    candidates = [f"{campaign}:{v}" for v in variants.get(campaign, [])]
    values = {c["campaign_id"]: c.get("value") for c in decision.get("candidates", [])}
    return LoggedDecision(
        decision_id=decision["decision_id"],
        context={
            "trigger": decision["trigger"],
            "campaign": campaign,
            "channel": decision.get("channel"),
            "customer_scores": decision.get("scores", {}),
            "scores": {a: values.get(campaign) or 0.0 for a in candidates},
        },
        candidates=candidates,
        action=f"{campaign}:{decision['variant']}" if action == "send" else NONE,
        propensity=decision["propensity"],
        reward=reward,
    )


def read_log(path: Path | str) -> list[LoggedDecision]:
    """A JSON-lines log, one :class:`LoggedDecision` per line (blank lines skipped); a line that is not one is
    refused naming the file, the line and the first field wrong (a decision log, ``decisions.jsonl``, is not one)."""
    records = []
    with Path(path).open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(LoggedDecision.model_validate_json(line))
            except ValidationError as error:
                first = error.errors()[0]
                field = ".".join(str(part) for part in first["loc"]) or "the line"
                raise ValueError(
                    f"{path}, line {number}: not a logged decision ({field}: {first['msg']}); evaluate-policy reads "
                    "one JSON object per decision with its context, candidates, action, propensity and reward, as "
                    "`make demo` writes to .nextbest/demo/logged.jsonl"
                ) from error
    return records


def load_callable(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` → the function (how the CLI names policies and reward models)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"expected module:function, got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))  # a policy module next to the log, as with ``python -m``
    found = getattr(importlib.import_module(module), name)
    if not callable(found):
        raise TypeError(f"{spec} is not callable")
    return found  # type: ignore[no-any-return]


def target_probabilities(policy: Policy, record: LoggedDecision) -> dict[str, float]:
    """The policy's distribution at this decision, checked: a wrong policy must fail loudly, not bias silently."""
    probs = {a: float(p) for a, p in policy(record).items() if p}
    unknown = set(probs) - set(record.actions())
    if unknown:
        raise ValueError(f"{record.decision_id}: policy chose {sorted(unknown)}, not among its actions")
    if any(p < 0 for p in probs.values()) or not math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"{record.decision_id}: policy probabilities must be >= 0 and sum to 1, got {probs}")
    return probs


# --- Estimators on arrays ----------------------------------------------------------------------------------------


def _normal(values: np.ndarray, z: float) -> Estimate:
    value = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.inf
    return Estimate(value, value - z * se, value + z * se, se)


def estimate(
    rewards: Sequence[float] | np.ndarray,
    weights: Sequence[float] | np.ndarray,
    direct: Sequence[float] | np.ndarray | None = None,
    predicted: Sequence[float] | np.ndarray | None = None,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Estimate]:
    """IPW, SNIPW and (given a reward model) DM and DR estimates with (1 - alpha) intervals.

    Args:
        rewards: r_i, the logged rewards.
        weights: w_i = pi(a_i | x_i) / p_i, the target policy's probability of the logged action over its
            logging propensity.
        direct: sum_a pi(a | x_i) q(x_i, a), the reward model's value of the target policy at each record.
        predicted: q(x_i, a_i), the reward model's prediction for the logged action.
        n_bootstrap: 0 for normal intervals on influence values; otherwise that many bootstrap resamples.

    DM's interval reflects only how its predictions vary across records, not the model's own error (its bias is
    exactly what DR's correction term estimates): read it as a diagnostic, never as the answer.
    """
    r = np.asarray(rewards, dtype=float)
    w = np.asarray(weights, dtype=float)
    n = len(r)
    if n == 0 or len(w) != n:
        raise ValueError("need as many weights as rewards, and at least one record")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    terms = {"ipw": w * r}
    if direct is not None and predicted is not None:
        d, q = np.asarray(direct, dtype=float), np.asarray(predicted, dtype=float)
        terms["dm"] = d
        terms["dr"] = d + w * (r - q)
    out = {name: _normal(values, z) for name, values in terms.items()}
    mean_w = float(w.mean())
    if mean_w > 0:
        snipw = float((w * r).sum() / w.sum())
        influence = w * (r - snipw) / mean_w
        se = float(influence.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        out["snipw"] = Estimate(snipw, snipw - z * se, snipw + z * se, se)
    if n_bootstrap:
        out = _bootstrap(out, terms, w, r, alpha, n_bootstrap, seed)
    return {name: out[name] for name in ("ipw", "snipw", "dm", "dr") if name in out}


def _bootstrap(
    normal: dict[str, Estimate],
    terms: dict[str, np.ndarray],
    w: np.ndarray,
    r: np.ndarray,
    alpha: float,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Estimate]:
    """Percentile-bootstrap intervals over records (the point estimates are unchanged)."""
    rng = np.random.default_rng(seed)
    n = len(r)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in [*terms, "snipw"]}
    chunk = max(1, min(n_bootstrap, 2_000_000 // n))  # bounded memory: chunk x n indices at a time
    done = 0
    while done < n_bootstrap:
        size = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, n, size=(size, n))
        for name, values in terms.items():
            draws[name].append(values[idx].mean(axis=1))
        wr, ww = (w * r)[idx].sum(axis=1), w[idx].sum(axis=1)
        draws["snipw"].append(np.divide(wr, ww, out=np.zeros_like(wr), where=ww > 0))
        done += size
    out = {}
    for name, e in normal.items():
        sample = np.concatenate(draws[name])
        lower, upper = np.quantile(sample, [alpha / 2, 1 - alpha / 2])
        out[name] = Estimate(e.value, float(lower), float(upper), float(sample.std(ddof=1)))
    return out


# --- Reward model: cross-fitted, shrunk group means -------------------------------------------------------------


def _group(record: LoggedDecision, keys: Sequence[str]) -> str:
    return json.dumps([record.context.get(k) for k in keys], default=str)


@dataclass(frozen=True)
class GroupMeans:
    """q(x, a) = mean reward of action a among records whose ``context_keys`` match x, shrunk towards the mean of
    all actions in that group by an empirical-Bayes prior worth ``strength`` records (method of moments: the
    within-action variance over the between-action variance). With few rewards per action — the usual case for
    conversions — the shrinkage is strong and q is about the group's mean, which is all the data supports."""

    context_keys: tuple[str, ...]
    group_mean: dict[str, float]
    cell_mean: dict[tuple[str, str], float]
    overall: float
    strength: float

    @classmethod
    def fit(cls, records: Iterable[LoggedDecision], context_keys: Sequence[str] = ()) -> GroupMeans:
        sums: dict[tuple[str, str], list[float]] = {}
        groups: dict[str, list[float]] = {}
        total, total_sq, count = 0.0, 0.0, 0
        for record in records:
            g = _group(record, context_keys)
            cell = sums.setdefault((g, record.action), [0.0, 0.0])
            cell[0] += record.reward
            cell[1] += 1
            grp = groups.setdefault(g, [0.0, 0.0])
            grp[0] += record.reward
            grp[1] += 1
            total += record.reward
            total_sq += record.reward**2
            count += 1
        overall = total / count if count else 0.0
        within = total_sq / count - overall**2 if count else 0.0
        # Between-action variance of the cell means around their group's mean, net of sampling noise (moments).
        cells = [(s / n - groups[g][0] / groups[g][1], n) for (g, _), (s, n) in sums.items()]
        if len(cells) > 1:
            spread = float(np.mean([m * m for m, _ in cells]))
            noise = float(np.mean([within / n for _, n in cells]))
            between = spread - noise
        else:
            between = 0.0
        strength = within / between if between > 0 else 1e9
        prior_strength = 10.0  # groups themselves shrink lightly towards the overall mean
        group_mean = {g: (s + prior_strength * overall) / (n + prior_strength) for g, (s, n) in groups.items()}
        cell_mean = {(g, a): (s + strength * group_mean[g]) / (n + strength) for (g, a), (s, n) in sums.items()}
        return cls(tuple(context_keys), group_mean, cell_mean, overall, strength)

    def __call__(self, record: LoggedDecision) -> dict[str, float]:
        g = _group(record, self.context_keys)
        base = self.group_mean.get(g, self.overall)
        return {a: self.cell_mean.get((g, a), base) for a in record.actions()}


def cross_fitted(
    records: Sequence[LoggedDecision], context_keys: Sequence[str] = (), folds: int = 5, seed: int = 0
) -> list[dict[str, float]]:
    """Each record's :class:`GroupMeans` predictions from a model fitted without its fold."""
    fold = np.random.default_rng(seed).integers(0, folds, size=len(records))
    out: list[dict[str, float]] = [{} for _ in records]
    for f in range(folds):
        model = GroupMeans.fit((r for r, k in zip(records, fold, strict=True) if k != f), context_keys)
        for i in np.flatnonzero(fold == f).tolist():
            out[i] = model(records[i])
    return out


# --- Records → estimates ------------------------------------------------------------------------------------------


def evaluate(
    records: Sequence[LoggedDecision],
    policy: Policy,
    reward_model: RewardModel | None = None,
    *,
    context_keys: Sequence[str] = (),
    alpha: float = 0.05,
    n_bootstrap: int = 0,
    folds: int = 5,
    seed: int = 0,
) -> Evaluation:
    """Estimate ``policy``'s value from ``records`` logged by another policy.

    ``reward_model`` (already trained, e.g. our scoring model) gives DM and DR; without one, cross-fitted
    :class:`GroupMeans` over ``context_keys`` are used.
    """
    if not records:
        raise ValueError("no logged decisions")
    targets = [target_probabilities(policy, r) for r in records]
    predictions = (
        [reward_model(r) for r in records] if reward_model else cross_fitted(records, context_keys, folds, seed)
    )
    rewards = np.array([r.reward for r in records])
    weights = np.array([t.get(r.action, 0.0) / r.propensity for r, t in zip(records, targets, strict=True)])
    direct = np.array([sum(p * q.get(a, 0.0) for a, p in t.items()) for t, q in zip(targets, predictions, strict=True)])
    predicted = np.array([q.get(r.action, 0.0) for r, q in zip(records, predictions, strict=True)])
    estimates = estimate(rewards, weights, direct, predicted, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    ess = float(weights.sum() ** 2 / (weights**2).sum()) if weights.any() else 0.0
    notes = []
    if ess < 100:
        notes.append("effective sample size under 100: the target policy rarely agrees with the log")
    if abs(weights.mean() - 1) > 3 * weights.std(ddof=1) / math.sqrt(len(weights)) + 0.05:
        notes.append("mean weight far from 1: propensities may be wrong or the policy leaves the log's support")
    return Evaluation(
        n=len(records),
        logged_value=_normal(rewards, z),
        estimates=estimates,
        effective_sample_size=ess,
        mean_weight=float(weights.mean()),
        max_weight=float(weights.max()),
        interval="bootstrap" if n_bootstrap else "normal",
        alpha=alpha,
        notes=notes,
    )
