"""Each function's settings, defined once.

CDK builds a function's environment with ``Settings.environment(...)`` and the handler reads it back with
``Settings.from_env()``; the local emulation takes the environment from the synthesized template, so the
contract cannot drift between the three.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from nextbest.core.events import Channel
from nextbest.core.profiles import TriggerDelays
from nextbest.core.triggers import Watch

MAX_RECEIVE_COUNT = 5
"""Deliveries of a message before SQS would move it to the dead-letter queue (its redrive policy); on the last
one a function dead-letters a record that still fails itself, with the reason (``nextbest.aws.batch``)."""


class StageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table_name: str

    @classmethod
    def environment(cls, **values: Any) -> dict[str, str]:
        """Environment variables for a function (values may be CDK tokens, checked as strings)."""
        checked = cls.model_validate(values)
        return {name.upper(): _text(getattr(checked, name)) for name in cls.model_fields}

    @classmethod
    def from_env(cls) -> Self:
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = os.environ.get(name.upper())
            if raw is not None:
                values[name] = json.loads(raw) if field.annotation not in (str, "str") else raw
        return cls.model_validate(values)


def _text(value: Any) -> str:
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json", exclude_defaults=True), sort_keys=True)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class QueueStageSettings(StageSettings):
    """A step fed by an SQS queue."""

    dead_letter_queue_url: str = Field(description="Where input that can never succeed goes, with its reason.")


class SchedulingSettings(QueueStageSettings):
    """A step that arms alarms on EventBridge Scheduler (decide: what quiet hours defer)."""

    schedule_group: str
    decide_queue_arn: str
    scheduler_role_arn: str = Field(description="The role EventBridge Scheduler assumes to reach decide.")


class IngestSettings(QueueStageSettings):
    trigger_delay_seconds: dict[str, int] = Field(
        default_factory=dict, description="Derived at synth from the approved campaigns' trigger delays."
    )
    erasure_secret_arn: str = Field(description="Secrets Manager secret whose value keys the erasure tombstones.")
    default_time_zone: str = Field(
        default="UTC", description="Where date triggers fire for a customer whose zone is unknown (the policy's)."
    )
    catalog_watch: Watch = Field(
        default_factory=Watch,
        description="Derived at synth from the approved catalog campaigns: which interests to record, which changes "
        "to fan out (``nextbest.core.interest``).",
    )
    events_queue_url: str = Field(
        description="Its own events queue: where a catalog change's fan-out goes, a message per shard, page and "
        "customer."
    )

    def delays(self) -> TriggerDelays:
        delays = {k: timedelta(seconds=v) for k, v in self.trigger_delay_seconds.items()}
        return TriggerDelays(delays, time_zone=self.default_time_zone, watch=self.catalog_watch)


class DecideSettings(SchedulingSettings):
    deliver_queue_urls: dict[Channel, str] = Field(
        description="deliver's queue for each channel: a channel the provider throttles holds up no other."
    )
    decide_queue_url: str = Field(description="Its own queue: the poll hands the profiles due to it through it.")
    site_url: str
    cart_url: str = Field(
        default="",
        pattern=r"^(https?://[^\s<>\"']+)?$",
        description="The shop's cart page, where a cart campaign's links lead; empty: <site_url>/cart.",
    )
    campaigns_dir: str = "campaigns"
    models_dir: str = Field(
        default="", description="The verified model set (the ML layer's /opt/models); empty: rules only."
    )
    policy_dir: str = Field(
        default="",
        description="The live targeting policy (the ML layer's /opt/policy), checked at cold start; empty: decide "
        "ranks campaigns by expected value.",
    )
    holdout_floor_percent: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="Every campaign holds out at least this share of its audience (context holdoutFloorPercent; "
        "``nextbest.core.campaigns.with_holdout_floor``).",
    )
    coupon_secret_arn: str = Field(
        default="", description="Secrets Manager secret whose value signs coupon codes (``nextbest.core.coupons``)."
    )
    arm_counts_ttl_s: float = Field(
        default=60.0,
        description="How long the variant counters Thompson sampling draws from are reused, in seconds of the "
        "decisions' clock (allocation needs trends, not every send).",
    )


DELIVER_TIMEOUT = timedelta(seconds=30)
"""deliver's function timeout (its queue's visibility timeout is six times it, ``infra.constructs.shared``)."""


class DeliverSettings(StageSettings):
    dead_letter_queue_urls: dict[str, str] = Field(
        description="Each delivery queue's name -> its dead-letter queue's URL: where a request that can never "
        "succeed goes, with its reason, beside the others of its channel."
    )
    sender: str
    configuration_set: str
    unsubscribe_url: str = Field(description="The one-click unsubscribe endpoint (a Lambda function URL).")
    signing_secret_arn: str = Field(description="Secrets Manager secret whose value signs unsubscribe links.")
    decide_queue_url: str = Field(
        description="decide's queue: where a fallback, or a send quiet hours overtook, is handed back (a Release)."
    )
    push_platform_application_arn: str = Field(
        default="", description="SNS platform application (FCM/APNs) the operator created; empty: no push."
    )
    sms_configuration_set: str = Field(
        default="",
        description="End User Messaging SMS configuration set: texts go through it (delivery events reach "
        "feedback); empty: SNS SMS, whose delivery status only reaches CloudWatch Logs.",
    )


class FeedbackSettings(QueueStageSettings):
    decide_queue_url: str = Field(description="Where fallbacks and soft bounces' retries go (a Release).")


class UnsubscribeSettings(StageSettings):
    signing_secret_arn: str


class TallySettings(StageSettings):
    """The tally reads the table's stream, not a queue: a batch that fails is retried by its event-source mapping."""
