"""Orders attributed to the messages that preceded them, kept incrementally in counters (by the tally).

When an order is applied to a profile, it is attributed to the last message of each campaign received
within the attribution window before it (last touch per campaign). Held-out customers' "would have sent"
records are attributed exactly the same way, which is what makes the comparison with the holdout fair.

The arms compare **episodes**, not messages: a first message and its follow-ups are one recipient, credited
with the orders from the first message until :func:`episode_end`, the same span whatever happens in it. Counting
messages would bias the uplift: an opened or successful reminder cancels its follow-up, a held-out customer
never opens anything and always gets the "would have sent" follow-up, so the holdout would have more and
shorter windows, hence fewer conversions per recipient (measured on the shop simulator: +1.6 points of
spurious conversion uplift on the cart reminder's true 7.6; ``python -m nextbest_lab.experiment``). The funnel
and the bandit's variant counts stay per message (last touch): they describe messages, not a comparison.
The message log on the profile remembers what each message has been credited with, and the counter
increments (the order's credits) ride on the profile write that applies the order, which the table's stream
brings to the tally once, so an order is counted once however often its event is delivered, and no report
ever rescans history.

Counters (of campaign ``s:<campaign>``, kept in the tally's items: ``nextbest.tally``):

* ``ARM#treatment`` / ``ARM#holdout`` / ``ARM#global_control``: recipients (decide, one per episode),
  conversions, revenue, revenue_sq per episode, the running sums ``nextbest_lab.uplift.ArmTotals`` reads. The
  campaign's holdout and the global control are kept apart so each can be reported; both are randomised
  non-recipients of the campaign, so uplift compares the treatment with their sum.
* ``VARIANT#<id>``: sends (decide) and conversions, the posterior of Thompson sampling.
* ``DAY#<yyyy-mm-dd>``: ``sends#<variant>`` (decide), the bandit's allocation day by day.
* ``FUNNEL#<variant>#<channel>`` (treatment only): the :data:`STAGES` of a message, each counted once per
  message by the status change or first event that proves it (deliver, feedback), plus conversions and
  revenue from here. A fallback message counts what happens to it (sent, delivered…) on its own channel;
  its conversions stay with the channel first chosen, where the message log recorded it.
* ``COUPONS``: ``issued`` (decide: a message carrying a code), ``redeemed`` (a code's first order), ``orders`` and
  ``revenue`` (every order that used a code of the campaign's, within the window or not: a code is a redemption
  whenever it comes back; ``order.placed``'s ``coupon``, matched to the message that carried it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from nextbest.core.campaigns import Campaign
from nextbest.core.counters import COUPONS, Counter, combined, funnel_key
from nextbest.core.profiles import MessageLog, Order, Profile

WINDOW = timedelta(days=7)
"""The attribution window: an order is credited to the last message of each campaign in the 7 days before it.
Fixed, not a policy setting: the report's episodes, the holdout's windows and the counters already written all
assume it, so changing it would mix incomparable figures."""


CONTROLS = ("holdout", "global_control")
"""The arms that were not sent the campaign: uplift compares the treatment with their sum."""


def group(message: MessageLog) -> str:
    if message.global_control:
        return "global_control"
    return "holdout" if message.held_out else "treatment"


def follow_up_span(campaign: Campaign) -> timedelta:
    """How long after its first message an episode's last follow-up can come."""
    follow_up = campaign.follow_up
    return timedelta(hours=follow_up.after_hours * follow_up.max_steps) if follow_up else timedelta(0)


def episode_end(campaign: Campaign, first_at: datetime, window: timedelta = WINDOW) -> datetime:
    """Until when an episode begun at ``first_at`` is credited: the window after its last possible follow-up,
    decided up front so that it is the same for the treated and the held-out."""
    return first_at + follow_up_span(campaign) + window


def _latest(found: dict[str, MessageLog], m: MessageLog) -> None:
    if m.campaign_id not in found or m.at > found[m.campaign_id].at:
        found[m.campaign_id] = m


def attribute(before: Profile | None, after: Profile, window: timedelta = WINDOW) -> tuple[Profile, list[Counter]]:
    """Credit the orders ``after`` has and ``before`` had not; the profile with its message log updated, and
    the counter increments to write with it.

    ``converted_at``/``revenue`` of a first message (step 0) are its episode's; of a follow-up, its own."""
    known = {o.order_id for o in before.orders} if before else set()
    new_orders = [o for o in after.orders if o.order_id not in known]
    if not new_orders or not after.messages:
        return after, []
    messages = {m.decision_id: m for m in after.messages}
    counters: list[Counter] = []
    for order in sorted(new_orders, key=lambda o: o.at):
        first, last = _credited(messages.values(), order.at, window, order.decision_id)
        counters += _arm_credit(first.values(), order.total) + _funnel_credit(last.values(), order.total)
        for m in {m.decision_id: m for m in (*first.values(), *last.values())}.values():
            messages[m.decision_id] = m.model_copy(
                update={"converted_at": m.converted_at or order.at, "revenue": m.revenue + order.total}
            )
        counters += _coupon_credit(messages, order)
    updated = after.model_copy(update={"messages": [messages[m.decision_id] for m in after.messages]})
    return updated, combined(counters)


def _credited(
    messages: Iterable[MessageLog], at: datetime, window: timedelta, named: str | None = None
) -> tuple[dict[str, MessageLog], dict[str, MessageLog]]:
    """Per campaign, the episode an order at ``at`` falls in (its first message: the arms) and the last message
    within the window (the funnel and the bandit).

    ``named`` is the decision id the order came back with (``nb`` from a message's link): within the window, that
    message is its campaign's touch for the funnel and the bandit, whichever came last, since the customer arrived
    through it. The arms stay as they are: a held-out customer has no link to come back through, so letting a link
    move the credit would treat the two arms differently."""
    first: dict[str, MessageLog] = {}
    last: dict[str, MessageLog] = {}
    clicked = None
    for m in messages:
        if m.at <= at < m.at + window:
            _latest(last, m)
            clicked = m if m.decision_id == named and not m.held_out else clicked
        if m.step == 0 and m.at <= at < (m.credit_until or m.at + window):
            _latest(first, m)
    if clicked is not None:
        last[clicked.campaign_id] = clicked
    return first, last


def _coupon_credit(messages: dict[str, MessageLog], order: Order) -> list[Counter]:
    """An order that used a message's code, for the code's campaign: counted whenever it comes (a code may be valid
    longer than the attribution window), the code itself once however many orders use it."""
    m = messages.get(order.redeemed) if order.redeemed else None
    if m is None:
        return []
    counts = [("orders", Decimal(1))]
    if m.redeemed_at is None:
        counts.append(("redeemed", Decimal(1)))
        messages[m.decision_id] = m.model_copy(update={"redeemed_at": order.at})
    return [Counter(f"s:{m.campaign_id}", COUPONS, order.total, attribute="revenue", also=tuple(counts))]


def _arm_credit(episodes: Iterable[MessageLog], value: Decimal) -> list[Counter]:
    counters = []
    for m in episodes:
        arm, item, so_far = f"s:{m.campaign_id}", f"ARM#{group(m)}", m.revenue
        counters.append(Counter(arm, item, value, attribute="revenue"))
        counters.append(Counter(arm, item, (so_far + value) ** 2 - so_far**2, attribute="revenue_sq"))
        if m.converted_at is None:
            counters.append(Counter(arm, item, Decimal(1), attribute="conversions"))
    return counters


def _funnel_credit(lasts: Iterable[MessageLog], value: Decimal) -> list[Counter]:
    counters = []
    for m in lasts:
        arm = f"s:{m.campaign_id}"
        if m.held_out:
            continue
        counters.append(Counter(arm, funnel_key(m), value, attribute="revenue"))
        if m.converted_at is None:
            counters.append(Counter(arm, funnel_key(m), Decimal(1), attribute="conversions"))
            if m.variant:
                counters.append(Counter(arm, f"VARIANT#{m.variant}", Decimal(1), attribute="conversions"))
    return counters
