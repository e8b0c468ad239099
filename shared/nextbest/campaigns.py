"""Campaigns as code: reviewed TOML files, validated here at synth time, in tests and at cold start.

The approval gate lives in the model: a campaign whose status is ``approved`` must name its approver, and
decide never considers any other status.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from nextbest.events import Channel

TriggerKind = Literal["cart_abandoned"]


class CampaignError(ValueError):
    """A campaign file that must not ship; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    kind: TriggerKind
    delay_minutes: Annotated[int, Field(ge=0, le=60 * 24 * 30)] = 60

    @property
    def delay(self) -> timedelta:
        return timedelta(minutes=self.delay_minutes)


class Creative(_Model):
    """Jinja templates; variables: ``first_name``, ``items`` (name, quantity, unit_price), ``cart_value``,
    ``currency``, ``link``. HTML is autoescaped."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    html: Annotated[str, StringConstraints(min_length=1)]
    text: Annotated[str, StringConstraints(min_length=1)]
    sms: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    push: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        default=None, description="Notification body; the rendered subject is its title."
    )


class Campaign(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
    name: str
    status: Literal["draft", "approved", "paused", "archived"]
    approved_by: str | None = None
    approved_at: date | None = None
    trigger: Trigger
    channels: Annotated[list[Channel], Field(min_length=1)] = Field(
        description="In order of preference; the first one the customer consented to and can receive wins."
    )
    priority: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    creative: Creative

    @model_validator(mode="after")
    def _gate(self) -> Campaign:
        if self.status == "approved" and not (self.approved_by and self.approved_at):
            raise ValueError("an approved campaign must record approved_by and approved_at")
        for channel in ("sms", "push"):
            if channel in self.channels and not getattr(self.creative, channel):
                raise ValueError(f"channel {channel} needs creative.{channel}")
        return self

    def live(self, at: datetime) -> bool:
        starts = self.starts_at or datetime.min.replace(tzinfo=UTC)
        ends = self.ends_at or datetime.max.replace(tzinfo=UTC)
        return self.status == "approved" and starts <= at < ends


def load_campaigns(directory: Path) -> list[Campaign]:
    """Every ``*.toml`` under ``directory``; raises CampaignError naming the file and field at fault."""
    campaigns: list[Campaign] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            campaigns.append(Campaign.model_validate(tomllib.loads(path.read_text())))
        except tomllib.TOMLDecodeError as error:
            raise CampaignError(f"{path.name}: not valid TOML: {error}") from None
        except ValidationError as error:
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<file>'}: {e['msg']}" for e in error.errors())
            raise CampaignError(f"{path.name}: {fields}") from None
    ids = [c.id for c in campaigns]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CampaignError(f"campaign ids used twice: {', '.join(duplicates)}")
    return campaigns


def trigger_delays(campaigns: list[Campaign]) -> dict[str, timedelta]:
    """When ingest should wake decide for each trigger: the shortest delay of any approved campaign."""
    delays: dict[str, timedelta] = {}
    for campaign in campaigns:
        if campaign.status == "approved":
            kind = campaign.trigger.kind
            delays[kind] = min(delays.get(kind, campaign.trigger.delay), campaign.trigger.delay)
    return delays
