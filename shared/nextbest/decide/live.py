"""The live targeting policy in decide: which message (campaign, variant, channel) or none, and when.

``nextbest policy learn`` (``nextbest_lab.policy``) learns, from logged decisions, each action's estimated
*incremental* reward over sending nothing, and promotes it only past a gate; a human may also pin a version or
roll back (``nextbest policy promote|rollback``). The promoted policy ships with the stack beside the models (the
ML layer's ``/opt/policy``) and is checked at cold start like them: every file's sha256 against the manifest,
numpy's version, and the manifest saying the policy is live (promoted by the gate, or pinned). No policy:
decide ranks by expected value as before.

Here the policy is *applied*, with numpy alone and none of the lab's code (which fits with scikit-learn):

- **Actions.** Every eligible campaign x variant x open channel (consented, reachable, under caps), written
  ``campaign:variant@channel``, and ``none``. The policy may know actions at a coarser grain (``campaign:variant``,
  as the demo's logs have them, or ``campaign``): an action takes the score of the most specific id it knows.
  An action it has no evidence for is only explored.
- **Probabilities.** Every open action keeps the policy's exploration floor (from its hash-checked spec,
  1% by default); the best-scoring known action gets the rest. The action is *sampled*, reproducibly from the
  decision id (a retry picks the same one), and the decision logs the probability it was drawn with and the
  whole distribution (``p:<action>`` in its scores), so the next round's offline evaluation stays unbiased.
- **Send time.** The chosen message waits for the customer's best hour (the local hour they have most often
  ordered or browsed in, outside the channel's quiet hours) when that comes within the policy's window and
  before the trigger goes stale; decide defers it with the same alarm quiet hours use, and decides again then
  (caps, consent and quiet hours are checked again at that time).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nextbest.core import guardrails
from nextbest.core.campaigns import Campaign, Policy
from nextbest.core.commands import MAX_LATENESS
from nextbest.core.events import Channel
from nextbest.core.profiles import Profile
from nextbest.decide.scoring import MANIFEST, ModelError, read_arrays, verify

NONE = "none"
SPEC_FILE, ARRAYS_FILE = "policy.json", "policy.npz"
"""As ``nextbest_lab.policy`` writes them (a test checks the two agree)."""
TREE_ARRAYS = ("left", "right", "feature", "threshold", "value")
LINEAR_ARRAYS = ("coef", "intercept")
UPLIFT, PROBABILITY = "uplift:", "p:"
"""Prefixes of the policy's figures in a decision's ``scores`` (what ``nextbest explain`` shows per candidate)."""
DEFAULT_SEND_WINDOW_HOURS = 12.0
STALE_MARGIN = timedelta(hours=1)
"""A send-time delay ends this long before decide would refuse the trigger as too late."""


def action_id(campaign_id: str, variant: str, channel: Channel) -> str:
    return f"{campaign_id}:{variant}@{channel}"


def context(trigger: str, numbers: Mapping[str, float]) -> dict[str, Any]:
    """What the policy sees of a decision: its trigger and the numbers the decision records (the customer's model
    scores and the policy's own context figures). The same function builds the logged decisions the next policy
    learns from (``nextbest policy export``), so learning and applying see the same features."""
    kept = {k: float(v) for k, v in numbers.items() if not k.startswith((UPLIFT, PROBABILITY))}
    return {"trigger": trigger, "customer_scores": kept}


def context_numbers(profile: Profile, now: datetime) -> dict[str, float]:
    """Figures of the customer the policy may use beyond the model scores; recorded in the decision's scores."""
    return {
        "order_count": float(profile.order_count),
        "messages_7d": float(len(guardrails.recent(profile, now, guardrails.WEEK))),
    }


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out |= _flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list | tuple):
            out[f"{prefix}{key}"] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class LivePolicy:
    """A verified policy, ready to score a decision's actions."""

    version: str
    """The first 12 hex digits of the arrays' sha256 (the decision records it beside the models' versions)."""
    actions: list[str]
    supported: list[bool]
    encoder: Mapping[str, Any]
    kind: str
    arrays: Mapping[str, Any]
    floor: float
    send_window: timedelta

    @classmethod
    def load(cls, directory: Path) -> LivePolicy:
        """Verify (hashes, numpy's version, live) then load; :class:`ModelError` says what is wrong."""
        manifest = verify(directory)
        if "policy" not in (manifest.get("models") or {}):
            raise ModelError(f"{directory}: not a policy (no 'policy' in the manifest's models)")
        if not is_live(manifest):
            raise ModelError(f"{directory}: the gate did not promote this policy and nobody pinned it; not shipping it")
        spec = json.loads((directory / SPEC_FILE).read_text())
        kind = str(spec["kind"])
        names = TREE_ARRAYS if kind.startswith("tree") else LINEAR_ARRAYS
        arrays = read_arrays(directory / ARRAYS_FILE, ("supported", *names))
        supported = [bool(s) for s in arrays.pop("supported")]
        floor = float(spec.get("floor", 0.01))
        if not 0 <= floor <= 1 or len(supported) != len(spec["actions"]):
            raise ModelError(f"{directory}: floor {floor} or {len(supported)} supported flags do not fit its actions")
        return cls(
            version=manifest["files"][ARRAYS_FILE]["sha256"][:12],
            actions=[str(a) for a in spec["actions"]],
            supported=supported,
            encoder=spec["encoder"],
            kind=kind,
            arrays=arrays,
            floor=floor,
            send_window=timedelta(hours=float(spec.get("send_window_hours", DEFAULT_SEND_WINDOW_HOURS))),
        )

    def features(self, ctx: Mapping[str, Any]) -> list[float]:
        """The context encoded as the lab's ``Encoder`` does: numbers standardised (missing: the mean, and a
        flag), other keys one-hot over the levels it kept."""
        flat = _flatten(ctx)
        e = self.encoder
        x = [
            (flat[k] - mu) / sd if _is_number(flat.get(k)) else 0.0
            for k, mu, sd in zip(e["numeric"], e["mean"], e["scale"], strict=True)
        ]
        x += [0.0 if _is_number(flat.get(k)) else 1.0 for k in e["missing"]]
        for key, levels in e["categorical"]:
            seen = str(flat.get(key))
            x += [1.0 if seen == level else 0.0 for level in levels]
        return x

    def scores(self, ctx: Mapping[str, Any]) -> list[float]:
        """Each of the policy's actions' estimated incremental reward over sending nothing, at this context."""
        import numpy as np

        x = np.asarray(self.features(ctx), dtype=np.float64)
        a = self.arrays
        if not self.kind.startswith("tree"):
            return [float(v) for v in np.asarray(a["coef"]) @ x + np.asarray(a["intercept"])]
        out = []
        for i in range(len(a["left"])):
            left, right, feature, threshold, value = (a[name][i] for name in TREE_ARRAYS)
            node = 0
            for _ in range(len(left)):
                if left[node] < 0:
                    break
                node = int(left[node] if x[int(feature[node])] <= threshold[node] else right[node])
            out.append(float(value[node]))
        return out

    def known(self, action: str) -> int | None:
        """The index of the most specific id the policy knows for ``action`` (``c:v@ch``, ``c:v``, ``c``)."""
        ids = {a: i for i, a in enumerate(self.actions)}
        without_channel = action.split("@", 1)[0]
        for candidate in (action, without_channel, without_channel.split(":", 1)[0]):
            if candidate in ids:
                return ids[candidate]
        return None

    def uplifts(self, open_actions: Sequence[str], ctx: Mapping[str, Any]) -> dict[str, float | None]:
        """Each open action's estimated uplift (``none``: 0), or None where the policy has no evidence for it."""
        scores = self.scores(ctx)
        out: dict[str, float | None] = {}
        for action in open_actions:
            i = self.known(action)
            if i is None or not self.supported[i]:
                out[action] = None
            else:
                out[action] = 0.0 if action == NONE else scores[i]
        return out


def is_live(manifest: Mapping[str, Any]) -> bool:
    """Promoted by the gate, or pinned by a person (``nextbest policy promote``)."""
    return bool((manifest.get("gate") or {}).get("promoted") or (manifest.get("live") or {}).get("pinned_by"))


def load_live_policy(directory: str | Path | None) -> LivePolicy | None:
    """The live policy shipped in ``directory``, or None when none is configured or present (decide then ranks by
    expected value). One that is present but fails verification raises: better no cold start than a wrong policy."""
    if directory is None or str(directory) == "":
        return None
    path = Path(directory)
    if not (path / MANIFEST).exists():
        return None
    return LivePolicy.load(path)


def probabilities(uplifts: Mapping[str, float | None], floor: float) -> dict[str, float]:
    """Every open action gets ``floor`` (all the same when the floors alone would pass 1); the known action with
    the highest uplift (ties: the first in order) gets the rest. They sum to 1."""
    actions = list(uplifts)
    if not actions:
        return {}
    known = [a for a in actions if uplifts[a] is not None]
    best = max(known, key=lambda a: uplifts[a] or 0.0) if known else (NONE if NONE in actions else actions[0])
    f = min(floor, 1.0 / len(actions))
    probs = dict.fromkeys(actions, f)
    probs[best] += 1.0 - f * len(actions)
    return probs


def draw(probs: Mapping[str, float], point: float) -> str:
    """The action whose share of [0, 1) holds ``point`` (in the order given)."""
    for action, p in probs.items():
        point -= p
        if point < 0:
            return action
    return list(probs)[-1]


def seed_point(decision_id: str) -> float:
    """A uniform number in [0, 1) fixed by the decision id: a retried decision draws the same action."""
    digest = hashlib.sha256(f"policy|{decision_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def open_channels(profile: Profile, campaign: Campaign, policy: Policy, now: datetime) -> list[Channel]:
    """The campaign's channels the customer consented to, can receive, and is not capped on."""
    return [
        channel
        for channel in campaign.channels
        if profile.has_consent(channel)
        and profile.reachable(channel)
        and guardrails.cap_reason(profile, channel, policy, now) is None
    ]


def best_hours(profile: Profile, policy: Policy) -> list[int]:
    """The customer's local hours, most active first: when they ordered and browsed (none known: empty)."""
    zone = guardrails.customer_zone(profile, policy)
    times: Iterable[datetime] = [*(o.at for o in profile.orders), *(v.at for v in profile.views)]
    counts = Counter(t.astimezone(zone).hour for t in times)
    return [hour for hour, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def send_at(
    profile: Profile, channel: Channel, campaign: Campaign, policy: Policy, due_at: datetime, now: datetime,
    window: timedelta,
) -> datetime | None:  # fmt: skip
    """When to send, if later than now: the next start of the customer's best hour that is not quiet for the
    channel, within ``window``, before the campaign ends and ``STALE_MARGIN`` before the trigger goes stale.
    None: send now (already in the best hour, no history, or the hour comes too late)."""
    hours = [h for h in best_hours(profile, policy) if not _quiet(profile, channel, policy, h)]
    if not hours:
        return None
    zone = guardrails.customer_zone(profile, policy)
    local = now.astimezone(zone)
    if local.hour == hours[0]:
        return None
    at = guardrails.next_local_hour(local, hours[0]).astimezone(now.tzinfo)
    latest = min(now + window, due_at + MAX_LATENESS - STALE_MARGIN)
    if campaign.ends_at is not None:
        latest = min(latest, campaign.ends_at)
    return at if at <= latest else None


def _quiet(profile: Profile, channel: Channel, policy: Policy, hour: int) -> bool:
    quiet = policy.quiet_hours
    if channel not in quiet.channels or quiet.start_hour == quiet.end_hour:
        return False
    if quiet.start_hour < quiet.end_hour:
        return quiet.start_hour <= hour < quiet.end_hour
    return hour >= quiet.start_hour or hour < quiet.end_hour


@dataclass(frozen=True)
class Option:
    """An eligible campaign as the policy sees it: the variants it may send (a follow-up keeps its first
    message's) and the channels open to it, with its expected value by today's ranking (shown beside)."""

    campaign: Campaign
    variants: list[str]
    channels: list[Channel]
    value: float


@dataclass(frozen=True)
class Pick:
    """What the policy drew: a message (campaign, variant, channel, maybe a later send time) or nothing."""

    campaign_id: str | None
    variant: str | None
    channel: Channel | None
    probability: float
    """The probability the action was drawn with (what the decision logs as its propensity)."""
    probabilities: dict[str, float]
    uplifts: dict[str, float | None]
    send_at: datetime | None = None

    @property
    def action(self) -> str:
        if self.campaign_id is None or self.variant is None or self.channel is None:
            return NONE
        return action_id(self.campaign_id, self.variant, self.channel)

    def scores(self) -> dict[str, float]:
        """The distribution and the uplifts, for the decision's ``scores`` (``nextbest explain`` reads them)."""
        out = {f"{PROBABILITY}{a}": round(p, 6) for a, p in self.probabilities.items()}
        out |= {f"{UPLIFT}{a}": round(u, 4) for a, u in self.uplifts.items() if u is not None}
        return out


def pick(live: LivePolicy, options: Sequence[Option], ctx: Mapping[str, Any], point: float) -> Pick:
    """Score every open action, give each its floor, and draw one with ``point`` (uniform in [0, 1))."""
    by_action: dict[str, tuple[Campaign, str, Channel]] = {}
    for option in options:
        for variant in option.variants:
            for channel in option.channels:
                by_action[action_id(option.campaign.id, variant, channel)] = (option.campaign, variant, channel)
    uplifts = live.uplifts([*by_action, NONE], ctx)
    probs = probabilities(uplifts, live.floor)
    chosen = draw(probs, point)
    if chosen == NONE:
        return Pick(None, None, None, probs[chosen], probs, uplifts)
    campaign, variant, channel = by_action[chosen]
    return Pick(campaign.id, variant, channel, probs[chosen], probs, uplifts)


def reasons(picked: Pick, options: Sequence[Option]) -> dict[str, str]:
    """Per eligible campaign, why the policy chose it or not, with its best uplift and its share of the draw."""
    out = {}
    for option in options:
        prefix = f"{option.campaign.id}:"
        mine = {a: p for a, p in picked.probabilities.items() if a.startswith(prefix)}
        known = {a: u for a, u in picked.uplifts.items() if a.startswith(prefix) and u is not None}
        best = max(known, key=lambda a: known[a]) if known else None
        uplift = f"best uplift {known[best]:+.2f} ({best})" if best else "no evidence (explored only)"
        share = f"p={sum(mine.values()):.3f}"
        if picked.campaign_id == option.campaign.id:
            out[option.campaign.id] = f"policy drew {picked.action} (p={picked.probability:.3f}); {uplift}, {share}"
        else:
            out[option.campaign.id] = f"policy drew {picked.action}; {uplift}, {share}"
    return out
