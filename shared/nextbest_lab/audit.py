"""The independent audit of what reached shoppers: what moto recorded as sent (SES e-mails, SNS texts), checked
against the simulator's truth (consent, who owns each address and the time zone they live in, which addresses
bounce) and the house policy's rules (``campaigns/policy.toml``, read as configuration) — never against nextbest's
own records, which are what is being checked. ``make demo`` and ``make torture`` both report these figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from nextbest.core.campaigns import Policy

from nextbest_lab.simulator import Truth, mailbox_scenario

WINDOWS = (("day", timedelta(days=1)), ("week", timedelta(days=7)))
"""The policy's rolling cap windows."""


@dataclass(frozen=True)
class Sent:
    """One message moto recorded as sent: its channel, the address it went to, the decision it carries (its tag or
    its tracked link) and the emulated time it was sent at."""

    channel: str
    address: str
    decision_id: str | None
    at: datetime


def sends(sent: list[Sent], truth: Truth, policy: Policy) -> dict[str, int]:
    """The violations among ``sent``: each counts the messages that broke the rule."""
    # A message is identified by the decision it carries and its channel: an SMS fallback carries the bounced
    # e-mail's decision (its link attributes to it) but is a different message.
    per_message = Counter((s.decision_id, s.channel) for s in sent)
    return {
        "optout_violations": sum(1 for s in sent if not truth.allowed(s.channel, s.address, s.at)),
        "quiet_hour_violations": len(quiet_hour_violations(sent, truth, policy)),
        "cap_violations": len(cap_violations(sent, truth, policy)),
        "duplicate_sends": sum(n - 1 for n in per_message.values() if n > 1),
        "unattributable_sends": sum(n for (decision, _), n in per_message.items() if decision is None),
    }


def reached(sent: Sent) -> bool:
    """Whether the message reached the shopper: an e-mail to an address the mailbox simulator bounces (or keeps on
    its suppression list) did not; a complaint or an out-of-office reply means it did."""
    return sent.channel != "email" or mailbox_scenario(sent.address) not in ("bounce", "suppressionlist")


def owner(sent: Sent, truth: Truth) -> str:
    """The shopper a message went to (the address itself, for one the simulator never handed out)."""
    return truth.owners.get(sent.address.lower(), sent.address.lower())


def quiet_hour_violations(sent: Iterable[Sent], truth: Truth, policy: Policy) -> list[Sent]:
    """Messages on a channel the policy keeps quiet at night, sent inside quiet hours in the shopper's own time."""
    quiet = policy.quiet_hours
    if quiet.start_hour == quiet.end_hour:
        return []
    found = []
    for s in sent:
        if s.channel not in quiet.channels:
            continue
        zone = ZoneInfo(truth.time_zones.get(owner(s, truth), quiet.default_time_zone))
        hour = s.at.astimezone(zone).hour
        if quiet.start_hour < quiet.end_hour:
            inside = quiet.start_hour <= hour < quiet.end_hour
        else:
            inside = hour >= quiet.start_hour or hour < quiet.end_hour
        if inside:
            found.append(s)
    return found


def cap_violations(sent: Iterable[Sent], truth: Truth, policy: Policy) -> list[CapViolation]:
    """Messages that reached a shopper beyond a cap: the (n+1)-th within any rolling 24 h or 7 days of a cap of n,
    per channel or over all channels (the first cap each broke)."""
    by_owner: dict[str, list[Sent]] = {}
    for s in sent:
        if reached(s):
            by_owner.setdefault(owner(s, truth), []).append(s)
    found = []
    for messages in by_owner.values():
        messages.sort(key=lambda s: s.at)
        for i, message in enumerate(messages):
            broken = _broken_cap(messages[: i + 1], message, policy)
            if broken is not None:
                found.append(broken)
    return found


@dataclass(frozen=True)
class CapViolation:
    message: Sent
    cap: str
    """Which cap, and by how much (``sms per day: 2 > 1``)."""
    counted: list[Sent]
    """The messages in the window that broke it, ``message`` last."""


def _broken_cap(before: list[Sent], message: Sent, policy: Policy) -> CapViolation | None:
    """The first cap ``message`` broke, given every message that reached the shopper up to it (itself included)."""
    for scope in ("all", message.channel):
        limits = policy.caps.get(scope)  # type: ignore[call-overload]
        if limits is None:
            continue
        for name, window in WINDOWS:
            limit = getattr(limits, name)
            inside = [s for s in before if s.at > message.at - window and scope in ("all", s.channel)]
            if limit is not None and len(inside) > limit:
                return CapViolation(message, f"{scope} per {name}: {len(inside)} > {limit}", inside)
    return None
