"""Decide: for a customer whose trigger is due, pick the next best message among the approved campaigns.

``decide`` is pure: it sees the profile, the campaigns and the time, and returns a :class:`Decision` that
lists every campaign considered with the rule that eliminated it or why it won. ``decide_for`` is the
orchestration the Lambda runs when a trigger's schedule fires.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.campaigns import Campaign
from nextbest.events import Channel
from nextbest.messages import Message, render
from nextbest.profiles import MAX_MESSAGES, MessageLog, Profile
from nextbest.queues import Queue
from nextbest.store import Store, iso

NAMESPACE = uuid.UUID("6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Candidate(_Model):
    campaign_id: str
    outcome: Literal["chosen", "eligible", "eliminated"]
    reason: str
    channel: Channel | None = None


class Decision(_Model):
    decision_id: str
    profile_key: str
    trigger: str
    trigger_due_at: datetime
    decided_at: datetime
    action: Literal["send", "none"]
    campaign_id: str | None = None
    channel: Channel | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    messages: dict[Channel, Message] = Field(
        default_factory=dict, description="Rendered for the chosen channel and the fallbacks it allows."
    )
    fallback_of: str | None = None


def decision_id(profile_key: str, trigger: str, due_at: datetime) -> str:
    """Deterministic, so a retried sweep finds the decision it already made instead of making another."""
    return str(uuid.uuid5(NAMESPACE, f"{profile_key}|{trigger}|{iso(due_at)}"))


def trigger_reason_holds(profile: Profile, trigger: str, due_at: datetime) -> str | None:
    """Why the trigger no longer applies, or None if it still does."""
    if trigger == "cart_abandoned":
        cart = profile.cart
        if cart is None or not cart.items:
            return "cart is empty now"
        if profile.last_order_at and profile.last_order_at >= cart.updated_at:
            return "purchased since the cart was left"
        return None
    return f"unknown trigger {trigger}"


def channel_for(profile: Profile, campaign: Campaign) -> tuple[Channel | None, str]:
    """The first of the campaign's channels this customer consented to and can receive, with reasons."""
    refusals = []
    for channel in campaign.channels:
        if not profile.has_consent(channel):
            refusals.append(f"{channel}: no consent")
        elif not profile.reachable(channel):
            refusals.append(f"{channel}: not reachable ({profile.email_status if channel == 'email' else 'none'})")
        else:
            return channel, f"{channel}: consented and reachable"
    return None, "; ".join(refusals)


def decide(
    profile: Profile, trigger: str, due_at: datetime, campaigns: list[Campaign], now: datetime, site_url: str
) -> Decision:
    did = decision_id(profile.key, trigger, due_at)
    gone = trigger_reason_holds(profile, trigger, due_at)
    candidates: list[Candidate] = []
    chosen: tuple[Campaign, Channel] | None = None
    for campaign in sorted(campaigns, key=lambda c: (-c.priority, c.id)):
        if campaign.trigger.kind != trigger:
            continue
        if campaign.status != "approved":
            candidates.append(
                Candidate(
                    campaign_id=campaign.id,
                    outcome="eliminated",
                    reason=f"status is {campaign.status}, not approved",
                )
            )
            continue
        if not campaign.live(now):
            candidates.append(Candidate(campaign_id=campaign.id, outcome="eliminated", reason="outside its dates"))
            continue
        if gone:
            candidates.append(Candidate(campaign_id=campaign.id, outcome="eliminated", reason=gone))
            continue
        channel, why = channel_for(profile, campaign)
        if channel is None:
            candidates.append(Candidate(campaign_id=campaign.id, outcome="eliminated", reason=why))
        elif chosen is None:
            chosen = (campaign, channel)
            candidates.append(
                Candidate(
                    campaign_id=campaign.id,
                    outcome="chosen",
                    channel=channel,
                    reason=f"highest priority ({campaign.priority}) eligible; {why}",
                )
            )
        else:
            candidates.append(
                Candidate(
                    campaign_id=campaign.id,
                    outcome="eligible",
                    channel=channel,
                    reason=f"lower priority than {chosen[0].id}",
                )
            )
    decision = Decision(
        decision_id=did,
        profile_key=profile.key,
        trigger=trigger,
        trigger_due_at=due_at,
        decided_at=now,
        action="none",
        candidates=candidates,
    )
    if chosen is None:
        return decision
    campaign, channel = chosen
    variables = _variables(profile, f"{site_url.rstrip('/')}/c/{did}")
    rendered = {ch: render(campaign, ch, variables) for ch in campaign.channels}
    return decision.model_copy(
        update={"action": "send", "campaign_id": campaign.id, "channel": channel, "messages": rendered}
    )


def _variables(profile: Profile, link: str) -> dict[str, object]:
    cart = profile.cart
    return {
        "first_name": profile.first_name,
        "items": [i.model_dump() for i in cart.items] if cart else [],
        "cart_value": cart.value if cart else 0,
        "currency": cart.currency if cart else "USD",
        "link": link,
    }


def delivery_request(decision_id: str) -> str:
    return json.dumps({"decision_id": decision_id})


def decide_for(
    store: Store, deliver: Queue, campaigns: list[Campaign], key: str, now: datetime, site_url: str
) -> list[Decision]:
    profile = store.profile(key)
    if profile is None or profile.key != key:
        return []
    made: list[Decision] = []
    for trigger, due_at in sorted(profile.triggers.items()):
        if due_at > now:
            continue
        decision = decide(profile, trigger, due_at, campaigns, now, site_url)
        status = "queued" if decision.action == "send" else "no_action"
        if not store.put_decision(
            decision.decision_id, status, decision.model_dump_json(), decision.profile_key, decision.decided_at
        ):
            existing = store.decision(decision.decision_id)
            assert existing is not None
            status, doc = existing
            decision = Decision.model_validate_json(doc)
        if status == "queued":
            deliver.send(delivery_request(decision.decision_id))
        made.append(decision)
    _close_triggers(store, key, made)
    return made


def _close_triggers(store: Store, key: str, made: list[Decision]) -> None:
    """Remove the triggers just decided (unless they moved meanwhile) and log the planned messages."""

    def close(profile: Profile) -> Profile:
        for d in made:
            if profile.triggers.get(d.trigger) == d.trigger_due_at:
                del profile.triggers[d.trigger]
            logged = any(m.decision_id == d.decision_id for m in profile.messages)
            if d.action == "send" and d.channel and d.campaign_id and not logged:
                profile.messages.append(
                    MessageLog(decision_id=d.decision_id, campaign_id=d.campaign_id, channel=d.channel, at=d.decided_at)
                )
        profile.messages = profile.messages[-MAX_MESSAGES:]
        return profile

    store.change(key, close)
