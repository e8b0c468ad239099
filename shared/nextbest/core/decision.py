"""The decision record: what decide chose for one customer and why, read by every later step."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from nextbest.core.clock import iso
from nextbest.core.events import Channel

NAMESPACE = uuid.UUID("6f1c63a0-2f7e-4d8e-9a57-0d8c1f6b4e21")


Action = Literal["send", "holdout", "defer", "none"]


class Message(BaseModel):
    """A creative rendered for one customer and channel (``nextbest.core.messages.render``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    subject: str | None = None
    html: str | None = None
    text: str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scored(Protocol):
    """What decide needs from the models (``nextbest.decide.scoring.Scores``)."""

    lapse_risk: float
    purchase_propensity: float
    recommendations: list[str]
    model_versions: dict[str, str]


class Candidate(_Model):
    campaign_id: str
    outcome: Literal["chosen", "eligible", "eliminated"]
    reason: str
    channel: Channel | None = None
    value: float | None = Field(default=None, description="Expected incremental value, in shop currency.")


class Decision(_Model):
    decision_id: str
    profile_key: str
    trigger: str
    trigger_due_at: datetime
    decided_at: datetime
    action: Action
    campaign_id: str | None = None
    channel: Channel | None = None
    variant: str | None = None
    group: Literal["treatment", "holdout", "global_control"] | None = None
    propensity: float | None = Field(
        default=None, description="Probability the logging policy took this action (variant and group)."
    )
    value: float | None = None
    step: int = 0
    defer_until: datetime | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    model_versions: dict[str, str] = Field(default_factory=dict)
    candidates: list[Candidate] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list, description="What the message promotes.")
    offer_cost: Decimal = Decimal(0)
    messages: dict[Channel, Message] = Field(
        default_factory=dict, description="Rendered for the chosen channel and the fallbacks it allows."
    )
    fallback_of: str | None = None
    coupon: str | None = Field(default=None, description="The offer's code the message carries (``coupons``).")


def decision_id(profile_key: str, trigger: str, due_at: datetime) -> str:
    """Deterministic, so a retried trigger finds the decision it already made instead of making another."""
    return str(uuid.uuid5(NAMESPACE, f"{profile_key}|{trigger}|{iso(due_at)}"))
