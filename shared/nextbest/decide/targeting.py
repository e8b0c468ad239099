"""Decide with the live policy: the glue between the engine's eligible campaigns and :mod:`nextbest.decide.live`.

The engine still applies every rule (status, dates, audience, cooldowns, conflicts, consent, caps, counters) and
values each campaign as before; the policy then chooses among what is left and ``none``, by estimated uplift with
an exploration floor, and the engine's own ``_act`` takes the draw through the experiment (global control,
holdouts) and the clock (the policy's send time, quiet hours). Kept apart from the engine so the two change
independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from nextbest.core.decision import Candidate, Decision
from nextbest.decide import live as policy

if TYPE_CHECKING:
    from nextbest.decide.engine import _Eligible, _Situation


def decide_live(
    decision: Decision,
    eliminated: list[Candidate],
    eligible: Sequence[_Eligible],
    s: _Situation,
    site_url: str,
    live: policy.LivePolicy,
    cart_url: str = "",
) -> Decision:
    """The decision the live policy draws among the eligible campaigns and none (see :mod:`nextbest.decide.live`)."""
    from nextbest.decide import engine

    numbers = {**decision.scores, **policy.context_numbers(s.profile, s.now)}
    options = []
    for e in eligible:
        previous = engine._last_message(s.profile, e.campaign.id) if s.follow_up else None
        variants = (
            [e.campaign.variant(previous.variant).id]
            if previous is not None and previous.variant
            else [v.id for v in e.campaign.variants]
        )
        channels = policy.open_channels(s.profile, e.campaign, s.policy, s.now) or [e.channel]
        options.append(policy.Option(e.campaign, variants, channels, e.value))
    picked = policy.pick(live, options, policy.context(s.trigger, numbers), policy.seed_point(decision.decision_id))
    why = policy.reasons(picked, options)
    candidates = []
    for e in eligible:
        outcome: Literal["chosen", "eligible"] = "chosen" if e.campaign.id == picked.campaign_id else "eligible"
        channel = picked.channel if outcome == "chosen" else e.channel
        candidates.append(
            Candidate(campaign_id=e.campaign.id, outcome=outcome, channel=channel, value=round(e.value, 4),
                      reason=why[e.campaign.id])
        )  # fmt: skip
    decision = decision.model_copy(
        update={
            "candidates": eliminated + sorted(candidates, key=lambda c: c.outcome != "chosen"),
            "scores": numbers | picked.scores(),
            "model_versions": decision.model_versions | {"policy": live.version},
        }
    )
    if picked.campaign_id is None:
        return decision.model_copy(update={"propensity": picked.probability})
    winner = next(e for e in eligible if e.campaign.id == picked.campaign_id)
    channel = picked.channel
    assert channel is not None
    value, offer_cost = engine.expected_value(
        winner.campaign, channel, s.profile, s.trigger, winner.step, s.policy, s.scores, s.now
    )
    send_at = policy.send_at(
        s.profile, channel, winner.campaign, s.policy, decision.trigger_due_at, s.now, live.send_window
    )
    chosen = engine._Eligible(winner.campaign, channel, value, offer_cost, winner.step)
    return engine._act(decision, chosen, s, site_url, lambda c: {}, replace(picked, send_at=send_at), cart_url)
