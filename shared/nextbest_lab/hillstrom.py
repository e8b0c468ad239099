"""A randomised e-mail campaign log shaped like the MineThatData E-Mail Analytics challenge (Hillstrom, 2008).

The policy learner must not lose to "send the best single e-mail to everyone" on a real campaign log, where
effects are small next to the noise of heavy-tailed spend. The challenge's log is public but not shipped here, so
this draws logs of its shape: the same columns and labels (``"Surburban"`` included), a third each of the men's
e-mail, the women's e-mail and no e-mail, and true two-week effects matched to its published marginals
(conversion 1.25% / 0.88% / 0.57%, spend per customer $1.42 / $1.08 / $0.65). Who buys anyway depends on
recency, history, newbie and channel; whom an e-mail moves depends on the customer's men's/women's purchase
history, in one of three :data:`WORLDS`. Every record's true expected spend under each arm is kept, so a policy's
true value can be set beside its estimate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nextbest_lab.ope import NONE, LoggedDecision

ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
ACTIONS = ("mens", "womens", NONE)
"""The arms as logged actions: the two e-mails, and ``none`` for the control."""
CONVERSION = (0.0125, 0.0088, 0.0057)
SPEND = (1.42, 1.08, 0.65)
"""Published per customer, by arm (:data:`ARMS`): what each arm's true expected outcomes average to."""
SEGMENTS = ("1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500", "5) $500 - $750",
            "6) $750 - $1,000", "7) $1,000 +")  # fmt: skip
EDGES = (100.0, 200.0, 350.0, 500.0, 750.0, 1000.0)
GROUPS = ("mens only", "womens only", "both")
WORLDS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "published": ((1.5, 0.9, 1.2), (0.2, 0.95, 0.55)),
    "homogeneous": ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    "personalised": ((2.4, 0.05, 1.0), (0.0, 1.1, 0.45)),
}
"""Each e-mail's extra conversion, relative, per purchase-history group (:data:`GROUPS`), before scaling to the
published lifts. ``published``: each e-mail moves its own buyers more, modestly (the women's e-mail is a little
better for women-only buyers: worth about 3 cents a customer, far below what 64,000 records can detect);
``homogeneous``: the same for everyone; ``personalised``: each e-mail moves its own buyers only, so sending each
group its e-mail truly earns about 35 cents a customer more than the men's e-mail for everyone."""


@dataclass(frozen=True)
class CampaignLog:
    records: list[LoggedDecision]
    expected: np.ndarray
    """(records, :data:`ACTIONS`): each customer's true expected spend under each arm."""
    converts: np.ndarray
    """(records, :data:`ACTIONS`): each customer's true probability of buying under each arm."""

    def true_value(self, probabilities: np.ndarray, actions: list[str], reward: str = "revenue") -> float:
        """True value per customer of a policy given as probabilities over ``actions`` (columns of a
        :class:`nextbest_lab.policy.Log`)."""
        truth = self.converts if reward == "conversion" else self.expected
        columns = np.column_stack([truth[:, ACTIONS.index(a)] for a in actions])
        return float((np.asarray(probabilities) * columns).sum(axis=1).mean())

    def halves(self) -> tuple[CampaignLog, CampaignLog]:
        """The first half (to learn from) and the second (to apply to)."""
        h = len(self.records) // 2
        return (
            CampaignLog(self.records[:h], self.expected[:h], self.converts[:h]),
            CampaignLog(self.records[h:], self.expected[h:], self.converts[h:]),
        )


def customers(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The challenge's columns, drawn near its marginals (history: a shifted lognormal, mean about $240)."""
    history = np.minimum(29.99 + rng.lognormal(4.6, 1.2, n), 3345.93).round(2)
    group = rng.choice(3, n, p=[0.45, 0.45, 0.10])
    return {
        "recency": rng.choice(np.arange(1, 13), n, p=np.linspace(1.4, 0.6, 12) / 12),
        "history_segment": np.array(SEGMENTS)[np.searchsorted(EDGES, history, side="right")],
        "history": history,
        "mens": (group != 1).astype(int),
        "womens": (group != 0).astype(int),
        "zip_code": rng.choice(["Surburban", "Urban", "Rural"], n, p=[0.45, 0.40, 0.15]),
        "newbie": rng.integers(0, 2, n),
        "channel": rng.choice(["Web", "Phone", "Multichannel"], n, p=[0.44, 0.44, 0.12]),
        "group": group,
    }


def campaign_log(n: int = 64_000, seed: int = 0, world: str = "published") -> CampaignLog:
    """``n`` customers, each assigned an arm uniformly (propensity 1/3), with their two weeks' spend as reward.

    Buying anyway is likelier for recent customers, bigger spenders, old customers and multichannel ones (a
    multiplier averaging 1); an e-mail adds to that chance in proportion to it and to the e-mail's lift for the
    customer's group (:data:`WORLDS`), scaled so every arm's expected conversion over these customers is the
    published one. Spend among buyers is heavy-tailed ($30 plus a lognormal, at most $500), its mean set per arm
    so spend per customer is the published one within the 1% the cap takes off.
    """
    rng = np.random.default_rng(seed)
    c = customers(n, rng)
    anyway = np.exp(-0.08 * c["recency"] + 0.25 * np.log(c["history"] / 100) - 0.2 * c["newbie"]
                    + 0.3 * (c["channel"] == "Multichannel"))  # fmt: skip
    anyway /= anyway.mean()
    converts = np.empty((n, 3))
    converts[:, 2] = CONVERSION[2] * anyway
    for e_mail in (0, 1):
        extra = anyway * np.asarray(WORLDS[world][e_mail])[c["group"]]
        converts[:, e_mail] = converts[:, 2] + (CONVERSION[e_mail] - CONVERSION[2]) * extra / extra.mean()
    basket = np.array(SPEND) / np.array(CONVERSION)
    arm = rng.integers(0, 3, n)
    bought = rng.random(n) < converts[np.arange(n), arm]
    spend = np.where(bought, _basket(basket[arm], rng.lognormal(-0.32, 0.8, n)), 0.0).round(2)
    records = [
        LoggedDecision(
            decision_id=f"hillstrom-{world}-{seed}-{i:06d}",
            context=_context(c, i),
            candidates=list(ACTIONS[:2]),
            action=ACTIONS[arm[i]],
            propensity=1 / 3,
            reward=float(spend[i]),
        )
        for i in range(n)
    ]
    mean_basket = _basket(basket[:, None], np.random.default_rng(0).lognormal(-0.32, 0.8, (1, 400_000))).mean(axis=1)
    return CampaignLog(records, converts * mean_basket, converts)


def _basket(mean: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """A buyer's spend: $30 plus a lognormal part (``unit`` has mean 1), at most $500."""
    return np.minimum(29.99 + (mean - 29.99) * unit, 499.99)


def _context(c: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    return {key: c[key][i].item() for key in c if key != "group"}


# --- The check: learn on one half, apply on the other, as the commands would be run ----------------------------


def write(records: list[LoggedDecision], path: Path, *, as_strings: bool = False) -> None:
    """JSON lines; ``as_strings``: every context value a string, as a CSV read naively would give them."""
    with path.open("w") as lines:
        for r in records:
            context = {k: str(v) for k, v in r.context.items()} if as_strings else r.context
            lines.write(r.model_copy(update={"context": context}).model_dump_json() + "\n")


def scores(log: CampaignLog, probabilities: Path, reward: str = "revenue") -> dict[str, Any]:
    """The applied probabilities (``nextbest policy apply``'s output) scored on ``log`` by IPW and DR against each
    single arm for everyone, with the truth beside them."""
    from nextbest_lab import policy

    rows = [json.loads(line) for line in probabilities.read_text().splitlines()]
    found = policy.Log.of(log.records, reward)  # type: ignore[arg-type]
    probs = np.array([[row["probabilities"].get(a, 0.0) for a in found.actions] for row in rows])
    x = policy.Encoder.fit([r.context for r in log.records]).transform([r.context for r in log.records])
    gamma = policy.pseudo_outcomes(found, x)
    weights = probs[np.arange(len(rows)), found.taken] / found.propensity
    ipw, dr = weights * found.reward, (probs * gamma).sum(axis=1)
    out: dict[str, Any] = {"learned": {"ipw": float(ipw.mean()), "dr": float(dr.mean())}}
    out["learned"]["true"] = log.true_value(probs, found.actions, reward)
    for j, a in enumerate(found.actions):
        one = np.zeros(probs.shape)
        one[:, j] = 1.0
        arm_ipw = (found.taken == j) * found.reward / found.propensity
        out[a] = {"ipw": float(arm_ipw.mean()), "dr": float(gamma[:, j].mean())}
        out[a] |= {
            "true": log.true_value(one, found.actions, reward),
            "learned_minus_this_ipw": policy.paired(ipw, arm_ipw),
            "learned_minus_this_dr": policy.paired(dr, gamma[:, j]),
        }
    return out


def check(seed: int, world: str, n: int, folder: Path, reward: str = "revenue", as_strings: bool = False) -> dict:
    """``nextbest policy learn`` on one half of a log, ``nextbest policy apply`` on the other (with the floor decide
    would explore with, and with ``--floor 0``: the policy's own choice, apply's default), then :func:`scores` of
    each."""
    log = campaign_log(n, seed, world)
    train, test = log.halves()
    write(train.records, folder / "train.jsonl", as_strings=as_strings)
    write(test.records, folder / "test.jsonl", as_strings=as_strings)
    policy_dir = folder / "policy"
    shutil.rmtree(policy_dir, ignore_errors=True)
    started = time.perf_counter()
    _nextbest("policy", "learn", "--log", folder / "train.jsonl", "--out", policy_dir, "--reward", reward)
    learn_seconds = time.perf_counter() - started
    applied = {}
    explored = str(json.loads((policy_dir / "policy.json").read_text())["floor"])  # what decide would explore with
    for key, floor in (("scores", explored), ("no_floor", "0")):
        out = folder / "p.jsonl"
        _nextbest(
            "policy", "apply", "--policy", policy_dir, "--log", folder / "test.jsonl", "--out", out, "--floor", floor
        )
        applied[key] = scores(test, out, reward)
    manifest = json.loads((policy_dir / "manifest.json").read_text())
    return {
        "seed": seed,
        "world": world,
        "chosen": manifest["selection"]["chosen"],
        "promoted": manifest["gate"]["promoted"],
        "learn_seconds": learn_seconds,
        **applied,
    }


def _nextbest(*args: Any) -> None:
    subprocess.run([sys.executable, "-m", "nextbest_cli.main", *map(str, args)], check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--records", type=int, default=64_000)
    parser.add_argument("--world", choices=list(WORLDS), default="published")
    parser.add_argument("--reward", choices=["revenue", "conversion"], default="revenue")
    parser.add_argument("--as-strings", action="store_true", help="write every context value as a string")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            found = check(seed, args.world, args.records, Path(tmp), args.reward, args.as_strings)
            results.append(found)
            print(json.dumps(_line(found)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _line(found: dict[str, Any]) -> dict[str, Any]:
    s = found["scores"]
    arms = [a for a in ACTIONS if a in s]
    best_ipw = max(arms, key=lambda a: s[a]["ipw"])
    best_true = max(arms, key=lambda a: s[a]["true"])
    return {
        "seed": found["seed"],
        "chosen": found["chosen"],
        "promoted": found["promoted"],
        "learn_s": round(found["learn_seconds"], 1),
        "ipw_minus_best_arm": round(s["learned"]["ipw"] - s[best_ipw]["ipw"], 4),
        "best_arm_ipw": best_ipw,
        "dr_minus_best_arm": round(s["learned"]["dr"] - max(s[a]["dr"] for a in arms), 4),
        "true_minus_best_arm": round(s["learned"]["true"] - s[best_true]["true"], 4),
        "learned_minus_mens_dr": [round(v, 4) for v in s["mens"]["learned_minus_this_dr"]],
        "ipw_minus_best_arm_no_floor": round(found["no_floor"]["learned"]["ipw"] - s[best_ipw]["ipw"], 4),
    }


if __name__ == "__main__":
    sys.exit(main())
