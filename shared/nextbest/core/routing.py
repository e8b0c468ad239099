"""Which channel a decision may use now, and where it goes when its channel fails (the fallback)."""

from __future__ import annotations

import uuid

from nextbest.core.commands import release
from nextbest.core.decision import Decision
from nextbest.core.events import Channel
from nextbest.core.ports import Decisions, Outbox
from nextbest.core.profiles import Profile


def refusal(profile: Profile | None, channel: str) -> str | None:
    """Why this channel must not be used for this customer right now, or None."""
    if profile is None:
        return "profile no longer exists"
    if not profile.has_consent(channel):  # type: ignore[arg-type]
        return f"no {channel} consent"
    if not profile.reachable(channel):  # type: ignore[arg-type]
        return f"{channel} not reachable"
    return None


def fallback(decisions: Decisions, decide: Outbox, decision: Decision, profile: Profile) -> Channel | None:
    """Re-route a decision whose channel failed: a new decision (deterministic id) on the next channel of the
    campaign, in its order of preference, that the customer consented to and can receive. It is recorded
    ``waiting`` and handed to decide (a :class:`~nextbest.core.commands.Release`), which applies quiet hours
    and caps to it like to any message before queueing it. At most one fallback per channel and original
    decision, so it ends."""
    root_id = decision.fallback_of or decision.decision_id
    tried = {decision.channel}
    if decision.fallback_of:
        root = decisions.decision(decision.fallback_of)
        if root is not None:
            tried.add(root.decision.channel)
    for channel in decision.messages:
        if channel in tried or not (profile.has_consent(channel) and profile.reachable(channel)):
            continue
        rerouted = decision.model_copy(
            update={
                "decision_id": str(uuid.uuid5(uuid.UUID(root_id), f"{channel}-fallback")),
                "channel": channel,
                "fallback_of": root_id,
            }
        )
        created = decisions.put_decision(rerouted, "waiting")
        existing = None if created else decisions.decision(rerouted.decision_id)
        if created or (existing and existing.status == "waiting"):
            decide.send(release(rerouted.decision_id))
        return channel
    return None
