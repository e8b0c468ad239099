"""What one step asks of the next: each queue's payload is a pydantic model, parsed at the handler's edge."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SWEEP_SHARDS = 4
"""Sparse index of redirect items by the key they point to: erasure finds every identifier with it."""


MAX_LATENESS = timedelta(days=1)
"""A trigger that rings later than this (history loaded in bulk, a long outage) is not acted on."""


class DueTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile_key: str
    trigger: str
    due_at: AwareDatetime


def delivery_request(decision_id: str) -> str:
    return json.dumps({"decision_id": decision_id})


class Sweep(BaseModel):
    """One page of the daily sweep (or, without a segment, the request to start one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_at: datetime
    segment: int | None = Field(default=None, description="The shard of buyers this page belongs to.")
    start: dict[str, Any] | None = None
