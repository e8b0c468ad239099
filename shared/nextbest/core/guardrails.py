"""The rules no campaign may break, as pure checks over a profile's message log.

Each check returns the reason it refuses, or None. They read only the profile and the policy, so decide
can apply them all at once and write the decision together with the profile it was checked against (a
transaction conditional on the profile's version): two concurrent decisions for one customer cannot both
pass a cap. Held-out messages ("would have sent") count like sent ones, so the holdout is paced exactly
like the customers who receive the campaign.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nextbest.core.campaigns import Campaign, Fulfilment, Policy
from nextbest.core.events import Channel
from nextbest.core.profiles import MessageLog, Profile

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
CONTRADICTS: dict[Fulfilment, Fulfilment] = {"online_only": "in_store_only", "in_store_only": "online_only"}


def recent(profile: Profile, now: datetime, window: timedelta) -> list[MessageLog]:
    return [m for m in profile.messages if now - window < m.at <= now]


def cap_reason(
    profile: Profile, channel: Channel, policy: Policy, now: datetime, replacing: str | None = None
) -> str | None:
    """Rolling windows: no more than the cap in any 24 hours or 7 days, over all channels and per channel.

    Every message counts on its channel, and each fallback of it on the fallback's channel, when it was sent.
    ``replacing`` is the decision a fallback or a retry stands in for: its own log entry is left out, since the
    customer gets one message instead of it, not on top of it."""
    sends = [
        send
        for m in profile.messages
        if m.decision_id != replacing
        for send in ((m.channel, m.at), *((f.channel, f.at) for f in m.fallbacks))
    ]
    for scope in ("all", channel):
        limits = policy.caps.get(scope)  # type: ignore[call-overload]
        if limits is None:
            continue
        for limit, window, name in ((limits.day, DAY, "24 h"), (limits.week, WEEK, "7 days")):
            if limit is None:
                continue
            count = sum(1 for c, at in sends if now - window < at <= now and scope in ("all", c))
            if count >= limit:
                return f"{scope} cap: {count} of {limit} in {name}"
    return None


def cooldown_reason(profile: Profile, campaign: Campaign, now: datetime, follow_up: bool) -> str | None:
    """Re-eligible only ``cooldown_hours`` after the campaign's last message (its own follow-ups excepted)."""
    if follow_up or campaign.cooldown_hours == 0:
        return None
    last = max((m.at for m in profile.messages if m.campaign_id == campaign.id), default=None)
    if last is not None and now - last < timedelta(hours=campaign.cooldown_hours):
        return f"cooldown: last message {ago(now - last)} ago, re-eligible after {campaign.cooldown_hours} h"
    return None


def conflict_reason(
    profile: Profile, campaign: Campaign, products: Callable[[], Collection[str]], policy: Policy, now: datetime
) -> str | None:
    """One message per conflict group per window, and never an offer that contradicts a recent one for the
    same product (online-only against in-store-only). ``products`` gives the message's products, asked only when a
    recent offer contradicts this one: working them out may need the catalog, which most decisions never read."""
    window = timedelta(hours=policy.conflict_window_hours)
    for m in recent(profile, now, window):
        if campaign.conflict_group and m.conflict_group == campaign.conflict_group and m.campaign_id != campaign.id:
            return f"conflict group {campaign.conflict_group}: {m.campaign_id} {ago(now - m.at)} ago"
        opposite = CONTRADICTS.get(campaign.offer.fulfilment)
        if opposite and m.fulfilment == opposite and set(products()) & set(m.products):
            return f"contradicts {m.campaign_id} ({m.fulfilment}) for the same product"
    return None


def quiet_until(profile: Profile, channel: Channel, policy: Policy, now: datetime) -> datetime | None:
    """When quiet hours in the customer's time zone end, if ``now`` falls inside them for this channel."""
    quiet = policy.quiet_hours
    if channel not in quiet.channels or quiet.start_hour == quiet.end_hour:
        return None
    local = now.astimezone(_customer_zone(profile, policy))
    hour = local.hour
    inside = (
        quiet.start_hour <= hour < quiet.end_hour
        if quiet.start_hour < quiet.end_hour
        else hour >= quiet.start_hour or hour < quiet.end_hour
    )
    if not inside:
        return None
    return _next_local_hour(local, quiet.end_hour).astimezone(now.tzinfo)


def quiet_from(profile: Profile, channel: Channel, policy: Policy, now: datetime) -> datetime | None:
    """When the customer's next quiet hours begin for this channel (None if the channel has none): a message
    decided now must be sent before then, or decided again."""
    quiet = policy.quiet_hours
    if channel not in quiet.channels or quiet.start_hour == quiet.end_hour:
        return None
    local = now.astimezone(_customer_zone(profile, policy))
    return _next_local_hour(local, quiet.start_hour).astimezone(now.tzinfo)


def _next_local_hour(local: datetime, hour: int) -> datetime:
    """The next time after ``local`` that the clock on the wall shows ``hour``:00."""
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at > local else (local + DAY).replace(hour=hour, minute=0, second=0, microsecond=0)


def _customer_zone(profile: Profile, policy: Policy) -> ZoneInfo:
    return _zone(profile.time_zone) or _zone(policy.quiet_hours.default_time_zone) or ZoneInfo("UTC")


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"


def customer_zone(profile: Profile, policy: Policy) -> ZoneInfo:
    """The customer's time zone, else the house default, else UTC (what quiet hours are read in)."""
    return _customer_zone(profile, policy)


def next_local_hour(local: datetime, hour: int) -> datetime:
    """The next time after ``local`` that the wall clock shows ``hour``:00 (public for the live policy's send time)."""
    return _next_local_hour(local, hour)
