"""Validate the offline estimators on real logs: the Open Bandit Dataset sample (ZOZOTOWN, Saito et al. 2021).

Two policies recommended 3 of 80 fashion items at the same time on the same site for a week: uniform random
and Bernoulli Thompson Sampling (BTS). Each log records the click and the propensity of the item shown at each
position. The test of an estimator (the protocol of the dataset's paper, "Open Bandit Dataset and Pipeline",
NeurIPS 2021 datasets track): estimate one policy's value from the *other* policy's log and compare it with the
mean click of its own log (its on-policy value). Each impression-position is one logged decision whose context is
the position, as in obp.

The random policy's distribution is known exactly (1/80 per position). The BTS distribution is what obp's
``BernoulliTS(is_zozotown_prior=True).compute_batch_action_dist`` computes and what we reimplement: draw a
Beta(alpha_i, beta_i) score per item from the ZOZOTOWN prior, rank, show the top 3; repeat ``n_sim`` times and
count how often each item lands in each position. (It is the prior the production BTS started the period from;
the logged BTS kept updating, which is one reason the two differ a little.)

With ~40 clicks per 10,000-row log the on-policy "truth" itself has a ~16% standard error, so single-sample
errors of 20-40% are within the estimators' intervals; the figures are reported with them, not tuned to them.
"""

from __future__ import annotations

import csv
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nextbest_lab import datasets, ope
from nextbest_lab.ope import LoggedDecision

N_ITEMS, LEN_LIST = 80, 3


def read_prior(path: Path, campaign: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """``prior_bts.yaml`` (``campaign: {alpha: [...], beta: [...]}``) without a YAML dependency."""
    values: dict[str, dict[str, list[float]]] = {}
    section = key = None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 0:
            section = text.rstrip(":")
            values[section] = {}
        elif text.endswith(":") and section is not None:
            key = text.rstrip(":")
            values[section][key] = []
        elif text.startswith("-") and section is not None and key is not None:
            values[section][key].append(float(text[1:]))
    return np.array(values[campaign]["alpha"]), np.array(values[campaign]["beta"])


def bts_action_distribution(
    alpha: np.ndarray, beta: np.ndarray, len_list: int = LEN_LIST, n_sim: int = 100_000, seed: int = 12345
) -> np.ndarray:
    """P(item at position k) under Bernoulli Thompson Sampling with a fixed Beta prior, by Monte Carlo.

    Returns an (n_items, len_list) array whose columns sum to 1.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), len_list))
    chunk, done = 10_000, 0
    while done < n_sim:
        size = min(chunk, n_sim - done)
        sampled = rng.beta(alpha, beta, size=(size, len(alpha)))
        top = np.argsort(-sampled, axis=1)[:, :len_list]
        for k in range(len_list):
            counts[:, k] += np.bincount(top[:, k], minlength=len(alpha))
        done += size
    return counts / n_sim


def open_bandit_log(policy: str, campaign: str = "all", user_features: bool = False) -> list[LoggedDecision]:
    """The logged impressions of ``policy`` as our decision records (one per impression and position); with
    ``user_features``, the four hashed user features (categorical) join the position in the context."""
    candidates = [str(i) for i in range(N_ITEMS)]
    users = [f"user_feature_{k}" for k in range(4)] if user_features else []
    with datasets.open_bandit(policy, campaign).open() as f:
        return [
            LoggedDecision(
                decision_id=row[""],
                context={"position": int(row["position"]) - 1} | {k: row[k] for k in users},
                candidates=candidates,
                action=row["item_id"],
                propensity=float(row["propensity_score"]),
                reward=float(row["click"]),
            )
            for row in csv.DictReader(f)
        ]


def positional(distribution: np.ndarray, record: LoggedDecision) -> dict[str, float]:
    """A policy given as P(item | position) (``functools.partial`` it with the array)."""
    column = distribution[:, record.context["position"]]
    return {str(i): float(p) for i, p in enumerate(column) if p > 0}


def validate(n_sim: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """Each policy's value estimated from the other's log, next to its on-policy value.

    The reward model for DM/DR is chosen before looking at the errors: cross-fitted per-item click rates within
    a position, shrunk by empirical Bayes towards the position's rate (``GroupMeans`` by ``position``).
    """
    logs = {name: open_bandit_log(name) for name in ("random", "bts")}
    on_policy = {name: float(np.mean([r.reward for r in log])) for name, log in logs.items()}
    alpha, beta = read_prior(datasets.bts_prior())
    targets = {
        "random": np.full((N_ITEMS, LEN_LIST), 1 / N_ITEMS),
        "bts": bts_action_distribution(alpha, beta, n_sim=n_sim),
    }
    out: dict[str, Any] = {
        "on_policy": on_policy,
        "clicks": {n: int(sum(r.reward for r in g)) for n, g in logs.items()},
    }
    for target, source in (("random", "bts"), ("bts", "random")):
        evaluation = ope.evaluate(
            logs[source], partial(positional, targets[target]), context_keys=["position"], seed=seed
        )
        truth = on_policy[target]
        out[f"{target}_from_{source}"] = {
            name: {
                "value": e.value,
                "interval": [e.lower, e.upper],
                "relative_error": e.value / truth - 1,
                "covers_on_policy": e.lower <= truth <= e.upper,
            }
            for name, e in evaluation.estimates.items()
        } | {"effective_sample_size": evaluation.effective_sample_size, "max_weight": evaluation.max_weight}
    return out


def resampled(runs: int = 200, n_sim: int = 100_000, seed: int = 1, bar: float = 0.2) -> dict[str, float]:
    """How often DR lands within ``bar`` of the on-policy value when both logs are drawn again (bootstrap).

    One 10,000-row sample is one draw of this lottery: both the estimate and the "truth" it is compared
    with are noisy. Resampling both logs with replacement shows the spread a single comparison comes from,
    so a pass or a miss on the shipped sample can be read for what it is.
    """
    rng = np.random.default_rng(seed)
    logs = {name: open_bandit_log(name) for name in ("random", "bts")}
    alpha, beta = read_prior(datasets.bts_prior())
    targets = {
        "random": np.full((N_ITEMS, LEN_LIST), 1 / N_ITEMS),
        "bts": bts_action_distribution(alpha, beta, n_sim=n_sim),
    }
    out: dict[str, float] = {}
    for target, source in (("random", "bts"), ("bts", "random")):
        errors = []
        for _ in range(runs):
            log = [logs[source][i] for i in rng.integers(0, len(logs[source]), len(logs[source]))]
            picked = rng.integers(0, len(logs[target]), len(logs[target]))
            truth = float(np.mean([logs[target][i].reward for i in picked]))
            evaluation = ope.evaluate(log, partial(positional, targets[target]), context_keys=["position"])
            errors.append(evaluation.estimates["dr"].value / truth - 1)
        spread = np.abs(errors)
        out[f"obd_dr_within_{bar:.0%}_{target}_from_{source}"] = float(np.mean(spread <= bar))
        out[f"obd_dr_median_abs_error_{target}_from_{source}"] = float(np.median(spread))
    return out


def figures(result: dict[str, Any]) -> dict[str, float]:
    """Flat relative errors for ``make bench``: ``obd_<estimator>_rel_error_<target>_from_<source>``."""
    return {
        f"obd_{name}_rel_error_{direction}": round(result[direction][name]["relative_error"], 3)
        for direction in ("random_from_bts", "bts_from_random")
        for name in ("ipw", "snipw", "dr")
    }


if __name__ == "__main__":
    import json

    result = validate()
    print(json.dumps(result, indent=2))
    print(json.dumps(figures(result), indent=2))
    if "--resampled" in sys.argv:
        print(json.dumps(resampled(), indent=2))
