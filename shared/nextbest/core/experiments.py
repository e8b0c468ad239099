"""Who is held out, and which variant a customer gets.

Groups come from hashing the customer's canonical identity key with a salt: the same customer always lands
in the same group, without storing anything, and a merge keeps the group of the surviving key (the
customer id once known, so a shopper who logs in does not switch groups for the rest of their life).
The global control group never receives a campaign message; each campaign's holdout never receives that
campaign. Both are recorded as "would have sent" so the comparison with those who got it is fair.

Variants are allocated by Thompson sampling on observed sends and conversions (a Beta(1 + conversions,
1 + sends - conversions) posterior per variant): the probability of each variant is estimated once per
set of counts, and the customer's draw is seeded by the decision id, so a retried decision picks the same
variant and every decision records the exact probability it was made with (offline policy evaluation
needs it). Fixed weights give A/B/n.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from functools import lru_cache

from nextbest.core.campaigns import Campaign

THOMPSON_DRAWS = 4000


def bucket(unit: str, salt: str) -> float:
    """A stable, uniform number in [0, 1) for this unit and salt."""
    digest = hashlib.sha256(f"{salt}|{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_global_control(unit: str, percent: float) -> bool:
    return bucket(unit, "global-control") < percent / 100


def in_holdout(unit: str, campaign: Campaign) -> bool:
    return bucket(unit, f"holdout|{campaign.id}") < campaign.holdout_percent / 100


ArmCounts = Mapping[str, tuple[int, int]]
"""variant id -> (sends, conversions)."""


def allocation(campaign: Campaign, counts: ArmCounts) -> dict[str, float]:
    """Probability of each variant under the campaign's allocation rule."""
    if campaign.allocation == "fixed" or len(campaign.variants) == 1:
        total = sum(v.weight for v in campaign.variants)
        return {v.id: v.weight / total for v in campaign.variants}
    arms = tuple((v.id, *counts.get(v.id, (0, 0))) for v in campaign.variants)
    return dict(_thompson(arms))


@lru_cache(maxsize=1024)
def _thompson(arms: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, float], ...]:
    """P(each arm has the highest sampled conversion rate), by Monte Carlo with a fixed seed."""
    rng = random.Random(repr(arms))
    wins = dict.fromkeys((a[0] for a in arms), 0)
    for _ in range(THOMPSON_DRAWS):
        best = max(arms, key=lambda a: rng.betavariate(1 + a[2], 1 + max(a[1] - a[2], 0)))
        wins[best[0]] += 1
    # Never exactly 0: every arm keeps a small chance, so the logged propensities stay usable for OPE.
    floor = 0.01 / len(arms)
    raw = {k: max(v / THOMPSON_DRAWS, floor) for k, v in wins.items()}
    total = sum(raw.values())
    return tuple((k, v / total) for k, v in raw.items())


def draw(probabilities: Mapping[str, float], seed: str) -> str:
    """One variant, reproducibly for the same seed (the decision id)."""
    point = random.Random(seed).random()
    ordered: Sequence[tuple[str, float]] = sorted(probabilities.items())
    for variant, p in ordered:
        point -= p
        if point < 0:
            return variant
    return ordered[-1][0]
