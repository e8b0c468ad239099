"""Decide: the next best message for one customer whose trigger is due, across every campaign.

``decide`` is pure. It sees the profile, the campaigns, the house policy, the model scores (or none) and the
arms' counts, and returns a :class:`Decision` listing every campaign that answers the trigger, with the rule
that eliminated it or its expected value. Among the eligible, marketers' overrides win first (by priority);
then the highest expected incremental value, with priority breaking ties::

    value = propensity x (order value x margin rate - offer cost) - channel cost - fatigue

where propensity is the purchase-propensity model's score (the campaign's base rate without models), the
offer cost is what the incentive gives away if redeemed, and fatigue charges every message the customer
got in the last 7 days. A campaign whose value is not positive is not worth the customer's attention.
With a live policy deployed, the policy draws among the eligible campaigns and none instead of the ranking
(:mod:`nextbest.decide.targeting`); overrides still win.

The winner then meets the experiment: the global control group and the campaign's holdout get a "would
have sent" record (action ``holdout``); everyone else gets a variant drawn by Thompson sampling. Quiet
hours on the chosen channel defer the decision to the customer's morning (action ``defer``).

:class:`Decider` is the orchestration the Lambda runs: read, decide, take the campaign's send cap and budget
(:func:`limits`), and commit the decision together with the profile it was checked against.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, NamedTuple

from nextbest.core import experiments, guardrails, links
from nextbest.core.attribution import episode_end
from nextbest.core.campaigns import (
    FOLLOW_UP,
    LAPSE_CHECK_EVERY,
    Campaign,
    CatalogTrigger,
    EventTrigger,
    Policy,
    Trigger,
)
from nextbest.core.catalog import Category, Product, Shown, recommendable
from nextbest.core.clock import iso
from nextbest.core.commands import MAX_LATENESS
from nextbest.core.counters import Counter
from nextbest.core.decision import NAMESPACE, Candidate, Decision, Scored, decision_id
from nextbest.core.events import Channel
from nextbest.core.messages import event_properties, render
from nextbest.core.profiles import LAPSE, MAX_MESSAGES, Fallback, MessageLog, Occurrence, Profile, next_date
from nextbest.core.triggers import DATE_GRACE, CatalogSpec, DateSpec, EventSpec, number
from nextbest.decide import targeting
from nextbest.decide.live import LivePolicy, Pick

Coupons = Callable[[Campaign, str, datetime], str]
"""Issues the code of a message of the campaign (its decision id, the decision's time): ``nextbest.core.coupons``."""


def trigger_gone(profile: Profile, trigger: str, due_at: datetime, now: datetime) -> str | None:
    """Why the trigger no longer applies, or None if it still does. A lapse check is never too late: it is about
    the customer as they are now (a history loaded in bulk is checked when it lands)."""
    if trigger != LAPSE and now - due_at > MAX_LATENESS:
        return f"due {guardrails.ago(now - due_at)} ago: too late to be relevant (a backfill or an outage)"
    if trigger.startswith(FOLLOW_UP):
        return _follow_up_gone(profile, trigger.removeprefix(FOLLOW_UP))
    if (event := EventSpec.parse(trigger)) is not None:
        return None if event.name in profile.occurrences else f"no {event.name} event remembered"
    if (change := CatalogSpec.parse(trigger)) is not None:
        occurrence = profile.occurrences.get(change.occurrence)
        return _unwished(profile, occurrence) if occurrence else f"no {change.kind} change remembered"
    if (date := DateSpec.parse(trigger)) is not None:
        if date.attribute not in profile.dates:
            return f"no {date.attribute} date on the profile"
        late = now - due_at
        return f"due {guardrails.ago(late)} ago: a date's message is not sent a day late" if late > DATE_GRACE else None
    check = _STILL_THERE.get(trigger)
    return check(profile) if check else f"unknown trigger {trigger}"


def _unwished(profile: Profile, change: Occurrence) -> str | None:
    """A change told because the product was on the wishlist is not sent once the customer took it off (unless they
    put it in the cart since): the wishlist, unlike a cart, is a standing wish, and removing it withdraws it."""
    product_id = change.properties.get("product_id")
    if change.properties.get("interest") != "wishlist" or not isinstance(product_id, str):
        return None
    listed = profile.wishlist is not None and product_id in profile.wishlist.items
    carted = (interest := profile.interests.get(product_id)) is not None and interest.kind == "cart"
    return None if listed or carted else "interest: taken off the wishlist"


def changed_product(profile: Profile, trigger: str) -> str | None:
    """The product a catalog trigger is about (the change the profile remembers), or None for any other trigger."""
    spec = CatalogSpec.parse(trigger)
    occurrence = profile.occurrences.get(spec.occurrence) if spec is not None else None
    product_id = occurrence.properties.get("product_id") if occurrence is not None else None
    return product_id if isinstance(product_id, str) else None


def product_gone(profile: Profile, trigger: str, catalog: Mapping[str, Product] | None) -> str | None:
    """Why a catalog trigger's product may no longer be offered (the catalog as read for this decision): out of stock
    again, removed, or, after a price drop, dearer again than the drop said. None: it may (or not such a trigger)."""
    spec = CatalogSpec.parse(trigger)
    occurrence = profile.occurrences.get(spec.occurrence) if spec is not None else None
    if spec is None or occurrence is None or catalog is None:
        return None
    product = catalog.get(str(occurrence.properties.get("product_id")))
    if product is None or not recommendable(product):
        return f"product {product.availability.replace('_', ' ') if product else 'unknown to the catalog'} now"
    dropped_to = number(occurrence.properties.get("new_price"))
    if spec.kind == "price_drop" and product.price is not None and dropped_to is not None:
        return "price up again since the drop" if float(product.price) > dropped_to else None
    return None


def _cart_gone(profile: Profile) -> str | None:
    cart = profile.cart
    if cart is None or not cart.items:
        return "cart is empty now"
    if profile.last_order_at and profile.last_order_at >= cart.updated_at:
        return "purchased since the cart was left"
    return None


def _browse_gone(profile: Profile) -> str | None:
    last_view = profile.views[-1].at if profile.views else None
    if last_view is None:
        return "no product views"
    if profile.last_order_at and profile.last_order_at >= last_view:
        return "purchased since browsing"
    return None


def _no_orders(profile: Profile) -> str | None:
    return "no orders yet" if profile.order_count == 0 else None


def _follow_up_gone(profile: Profile, campaign_id: str) -> str | None:
    last = _last_message(profile, campaign_id)
    if last is None:
        return "nothing to follow up"
    if profile.last_order_at and profile.last_order_at >= last.at:
        return "purchased since the last message"
    if profile.last_engaged_at and profile.last_engaged_at >= last.at:
        return "engaged with the last message"
    return None


_STILL_THERE: dict[str, Callable[[Profile], str | None]] = {
    "cart_abandoned": _cart_gone,
    "browse_abandoned": _browse_gone,
    "replenishment": _no_orders,
    "post_purchase": _no_orders,
    LAPSE: _no_orders,
}
"""Per trigger, why its reason may have vanished since it was armed (None: still there)."""


def _last_message(profile: Profile, campaign_id: str) -> MessageLog | None:
    return max((m for m in profile.messages if m.campaign_id == campaign_id), key=lambda m: m.at, default=None)


def audience_reason(campaign: Campaign, profile: Profile, scores: Scored | None, now: datetime) -> str | None:
    a = campaign.audience
    if a.min_orders is not None and profile.order_count < a.min_orders:
        return f"audience: {profile.order_count} orders < {a.min_orders}"
    if a.max_orders is not None and profile.order_count > a.max_orders:
        return f"audience: {profile.order_count} orders > {a.max_orders}"
    trigger = campaign.trigger
    if isinstance(trigger, Trigger) and trigger.kind == "win_back":
        recency = profile.recency(now)
        if recency is None or recency < timedelta(days=trigger.lapsed_days):
            return f"audience: ordered within {trigger.lapsed_days} days"
    bounds = (
        ("lapse risk", "lapse_risk", a.min_lapse_risk, a.max_lapse_risk),
        ("propensity", "purchase_propensity", a.min_propensity, None),
    )
    for label, attribute, low, high in bounds:
        if low is None and high is None:
            continue
        if scores is None:
            return f"audience: needs a {label} score and no model is deployed"
        score = getattr(scores, attribute)
        if low is not None and score < low:
            return f"audience: {label} {score:.2f} < {low}"
        if high is not None and score > high:
            return f"audience: {label} {score:.2f} > {high}"
    if a.min_cart_value is not None and (profile.cart is None or profile.cart.value < a.min_cart_value):
        return f"audience: cart below {a.min_cart_value}"
    if a.categories_any and not set(a.categories_any) & set(profile.categories):
        return "audience: no affinity to its categories"
    return None


def _channel(profile: Profile, campaign: Campaign, policy: Policy, now: datetime) -> tuple[Channel | None, str]:
    """The first of the campaign's channels the customer consented to, can receive, and is not capped on."""
    refusals = []
    for channel in campaign.channels:
        if not profile.has_consent(channel):
            refusals.append(f"{channel}: no consent")
        elif not profile.reachable(channel):
            refusals.append(f"{channel}: not reachable")
        elif capped := guardrails.cap_reason(profile, channel, policy, now):
            refusals.append(f"{channel}: {capped}")
        else:
            return channel, f"{channel}: consented, reachable, under caps"
    return None, "; ".join(refusals)


def _order_value(profile: Profile, trigger: str, policy: Policy) -> Decimal:
    if trigger == "cart_abandoned" and profile.cart is not None and profile.cart.items:
        return profile.cart.value
    if profile.order_count:
        return profile.revenue / profile.order_count
    return policy.default_order_value


def _discount(campaign: Campaign, step: int) -> Decimal:
    extra = campaign.follow_up.extra_discount_percent * step if campaign.follow_up else Decimal(0)
    return min(campaign.offer.discount_percent + extra, Decimal(90))


def expected_value(
    campaign: Campaign, channel: Channel, profile: Profile, trigger: str, step: int, policy: Policy,
    scores: Scored | None, now: datetime,
) -> tuple[float, Decimal]:  # fmt: skip
    """(expected incremental value, offer cost if redeemed); see the module docstring."""
    basis = _order_value(profile, trigger, policy)
    offer_cost = basis * _discount(campaign, step) / 100 + campaign.offer.fixed_cost
    propensity = scores.purchase_propensity if scores is not None else campaign.base_conversion_rate
    recent = len(guardrails.recent(profile, now, guardrails.WEEK))
    value = (
        propensity * float(basis * campaign.margin_rate - offer_cost)
        - float(policy.channel_cost.get(channel, Decimal(0)))
        - float(policy.fatigue_cost) * recent
    )
    return value, offer_cost.quantize(Decimal("0.01"))


def recommended(scores: Scored | None, catalog: Mapping[str, Product] | None) -> list[str]:
    """The model's recommendations a message may show: those the catalog lists as in stock (never one out of stock,
    removed or unknown to it). Without a catalog (``None``: a lab's pure call) the model's list as it is."""
    ids = list(scores.recommendations) if scores is not None else []
    return ids if catalog is None else [p for p in ids if recommendable(catalog.get(p))]


def wanted_products(profile: Profile, scores: Scored | None, trigger: str = "") -> list[str]:
    """Every product a decision for ``profile`` may show: the product a catalog trigger is about, its cart, its last
    view, the model's recommendations (what decide reads from the catalog, in one request, before deciding)."""
    changed = [p] if (p := changed_product(profile, trigger)) is not None else []
    cart = [i.product_id for i in profile.cart.items] if profile.cart else []
    viewed = [profile.views[-1].product_id] if profile.views else []
    return list(dict.fromkeys([*changed, *cart, *viewed, *(scores.recommendations if scores else [])]))


@dataclass(frozen=True)
class _Situation:
    """What every campaign answering one trigger is checked against. What depends on the catalog is worked out the
    first time a rule asks for it, so a decision no campaign gets far enough in never looks at the catalog (the
    caller's may be read only then: ``Decider.handle``)."""

    profile: Profile
    trigger: str
    policy: Policy
    now: datetime
    scores: Scored | None
    trigger_gone: str | None
    excluded: dict[str, str]
    catalog: Mapping[str, Product] | None
    coupon: Coupons | None = None

    @property
    def follow_up(self) -> bool:
        return self.trigger.startswith(FOLLOW_UP)

    @cached_property
    def gone(self) -> str | None:
        return self.trigger_gone or product_gone(self.profile, self.trigger, self.catalog)

    @cached_property
    def recommended(self) -> list[str]:
        return recommended(self.scores, self.catalog)

    @cached_property
    def products(self) -> list[str]:
        """The products the message is about: the cart's, a catalog trigger's product, else the recommendations."""
        if self.trigger == "cart_abandoned" and self.profile.cart is not None:
            return [i.product_id for i in self.profile.cart.items]
        if (changed := changed_product(self.profile, self.trigger)) is not None:
            return [changed]
        return self.recommended


class _Eligible(NamedTuple):
    campaign: Campaign
    channel: Channel
    value: float
    offer_cost: Decimal
    step: int


def decide(
    profile: Profile,
    trigger: str,
    due_at: datetime,
    campaigns: list[Campaign],
    policy: Policy,
    now: datetime,
    site_url: str,
    scores: Scored | None = None,
    arms: Callable[[Campaign], experiments.ArmCounts] = lambda c: {},
    excluded: dict[str, str] | None = None,
    live: LivePolicy | None = None,
    catalog: Mapping[str, Product] | None = None,
    cart_url: str = "",
    coupon: Coupons | None = None,
) -> Decision:
    """``excluded`` names campaigns a shared counter refused (send rate, budget), with the reason. With a ``live``
    policy, it arbitrates between the eligible campaigns and none (unless a marketer's override is eligible; see
    :mod:`nextbest.decide.targeting`). ``catalog`` holds the products the decision may show (``wanted_products``),
    read by the caller: what messages show of them, and which may be recommended; it is looked at only once a rule
    needs it (a catalog trigger's product, a contradicting offer, a campaign chosen), so the caller may read it on
    first use. ``cart_url``: the shop's cart page, if not ``<site_url>/cart``. ``coupon`` issues the code of a
    message whose offer has one (it raises ``CouponsGone`` when a pool is empty: the caller excludes the campaign and
    decides again); without it, templates get no code (the lab's calls)."""
    gone = trigger_gone(profile, trigger, due_at, now)
    situation = _Situation(profile, trigger, policy, now, scores, gone, excluded or {}, catalog, coupon)
    candidates: list[Candidate] = []
    eligible: list[_Eligible] = []
    for campaign in sorted(campaigns, key=lambda c: c.id):
        if trigger not in campaign.triggers:
            continue
        found = _assess(campaign, situation)
        if isinstance(found, _Eligible):
            eligible.append(found)
        else:
            candidates.append(found)
    eligible.sort(key=lambda e: (not e.campaign.override, -e.campaign.priority if e.campaign.override else 0,
                                 -round(e.value, 2), -e.campaign.priority, e.campaign.id))  # fmt: skip
    decision = Decision(
        decision_id=decision_id(profile.key, trigger, due_at),
        profile_key=profile.key,
        trigger=trigger,
        trigger_due_at=due_at,
        decided_at=now,
        action="none",
        candidates=candidates + _ranked(eligible),
        scores=({"lapse_risk": scores.lapse_risk, "purchase_propensity": scores.purchase_propensity} if scores else {}),
        model_versions=dict(scores.model_versions) if scores else {},
    )
    if live is not None and eligible and not eligible[0].campaign.override:
        return targeting.decide_live(decision, candidates, eligible, situation, site_url, live, cart_url)
    return _act(decision, eligible[0], situation, site_url, arms, cart_url=cart_url) if eligible else decision


def _step(campaign: Campaign, situation: _Situation) -> int:
    """0 for a first message; for a follow-up, one more than the campaign's last message to this customer."""
    if not situation.follow_up:
        return 0
    last = _last_message(situation.profile, campaign.id)
    return (last.step if last else 0) + 1


def _elimination(campaign: Campaign, step: int, s: _Situation) -> str | None:
    """The first rule that rules the campaign out for this customer now, before channels are looked at."""
    if campaign.status != "approved":
        return f"status is {campaign.status}" + (f" ({campaign.review_note})" if campaign.review_note else "")
    reason = (None if campaign.live(s.now) else "outside its dates") or s.gone or s.excluded.get(campaign.id)
    reason = reason or audience_reason(campaign, s.profile, s.scores, s.now) or _where_reason(campaign, s)
    if reason is None and s.follow_up and campaign.follow_up and step > campaign.follow_up.max_steps:
        reason = f"follow-up: {campaign.follow_up.max_steps} steps done"
    reason = reason or guardrails.cooldown_reason(s.profile, campaign, s.now, s.follow_up)
    return reason or guardrails.conflict_reason(s.profile, campaign, lambda: s.products, s.policy, s.now)


def _occurrence(campaign: Campaign, profile: Profile) -> Occurrence | None:
    """What a custom event's or a catalog change's campaign answers: the occurrence the profile remembers."""
    trigger = campaign.trigger
    if isinstance(trigger, EventTrigger):
        return profile.occurrences.get(trigger.event)
    return profile.occurrences.get(trigger.spec.occurrence) if isinstance(trigger, CatalogTrigger) else None


def _event(campaign: Campaign, profile: Profile) -> dict[str, object]:
    """The template variable ``event``: the properties of the custom event or catalog change a campaign answers
    (empty otherwise)."""
    occurrence = _occurrence(campaign, profile)
    return {"event": event_properties(dict(occurrence.properties) if occurrence else {})}


def _where_reason(campaign: Campaign, s: _Situation) -> str | None:
    """A custom event's or catalog change's campaign: the first of its conditions the remembered occurrence fails."""
    if not isinstance(campaign.trigger, EventTrigger | CatalogTrigger):
        return None
    occurrence = _occurrence(campaign, s.profile)
    return campaign.trigger.unmet(occurrence.properties if occurrence else {})


def _assess(campaign: Campaign, s: _Situation) -> _Eligible | Candidate:
    """The campaign as a contender (its channel, value and offer cost), or the candidate record saying why not."""
    step = _step(campaign, s)
    reason = _elimination(campaign, step, s)
    channel = None
    if reason is None:
        channel, why = _channel(s.profile, campaign, s.policy, s.now)
        reason = None if channel else why
    if reason is not None or channel is None:
        return Candidate(campaign_id=campaign.id, outcome="eliminated", reason=reason or "")
    value, offer_cost = expected_value(campaign, channel, s.profile, s.trigger, step, s.policy, s.scores, s.now)
    if value <= 0 and not campaign.override:  # an override is the marketer's call; guardrails still hold
        return Candidate(
            campaign_id=campaign.id,
            outcome="eliminated",
            channel=channel,
            value=round(value, 4),
            reason="expected value not positive (fatigue or offer cost outweighs it)",
        )
    return _Eligible(campaign, channel, value, offer_cost, step)


def _ranked(eligible: list[_Eligible]) -> list[Candidate]:
    """The winner and the runners-up, in rank order."""
    ranked = []
    for rank, (campaign, channel, value, _, _) in enumerate(eligible):
        if rank == 0:
            why = "marketer override" if campaign.override else "highest expected value"
            reason = f"{why} ({value:.2f}, priority {campaign.priority}) via {channel}"
        else:
            reason = f"lower than {eligible[0].campaign.id}"
        outcome: Literal["chosen", "eligible"] = "chosen" if rank == 0 else "eligible"
        ranked.append(
            Candidate(campaign_id=campaign.id, outcome=outcome, channel=channel, value=round(value, 4), reason=reason)
        )
    return ranked


def _act(
    decision: Decision,
    winner: _Eligible,
    s: _Situation,
    site_url: str,
    arms: Callable[[Campaign], experiments.ArmCounts],
    picked: Pick | None = None,
    cart_url: str = "",
) -> Decision:
    """The winner meets the experiment and the clock: deferred to the morning, held out, or sent as a variant.
    ``picked``: the live policy's draw, which fixes the variant, its probability and maybe a later send time."""
    campaign, channel, value, offer_cost, step = winner
    did, profile = decision.decision_id, s.profile
    variant, p_variant = (
        (picked.variant, picked.probability) if picked and picked.variant else _variant(campaign, s, did, arms)
    )
    p_send = (1 - s.policy.global_control_percent / 100) * (1 - campaign.holdout_percent / 100)
    chosen: dict[str, Any] = {
        "campaign_id": campaign.id,
        "channel": channel,
        "variant": variant,
        "value": round(value, 4),
        "step": step,
        "products": s.products,
        "offer_cost": offer_cost,
    }
    # Quiet hours defer the held-out exactly like the treated: their "would have sent" is recorded when the
    # message would have gone, so both arms start their attribution window at the same moment and a trigger
    # that vanishes overnight (an order at 2 a.m.) drops out of both.
    quiet_end = guardrails.quiet_until(profile, channel, s.policy, s.now) or (picked.send_at if picked else None)
    if quiet_end is not None:
        deferred = str(uuid.uuid5(NAMESPACE, f"{did}|deferred|{iso(quiet_end)}"))
        return decision.model_copy(
            update=chosen | {"decision_id": deferred, "action": "defer", "defer_until": quiet_end}
        )
    control = experiments.in_global_control(profile.key, s.policy.global_control_percent)
    if control or experiments.in_holdout(profile.key, campaign):
        return decision.model_copy(
            update=chosen
            | {
                "action": "holdout",
                "group": "global_control" if control else "holdout",
                "propensity": (picked.probability if picked else 1.0) * (1 - p_send),
            }
        )
    creative = campaign.variant(variant).creative
    code = s.coupon(campaign, did, s.now) if s.coupon is not None and campaign.offer.coupon != "none" else None
    rendered = {
        ch: render(
            creative,
            ch,
            _variables(
                s,
                _Linker(site_url, cart_url or links.cart(site_url), ch, campaign, variant, did),
                _discount(campaign, step),
                step,
            )
            | _event(campaign, profile)
            | {"coupon": code},
        )
        for ch in campaign.channels
    }
    return decision.model_copy(
        update=chosen
        | {"action": "send", "group": "treatment", "propensity": p_variant * p_send, "messages": rendered}
        | {"coupon": code}
    )


def _variant(
    campaign: Campaign, s: _Situation, did: str, arms: Callable[[Campaign], experiments.ArmCounts]
) -> tuple[str, float]:
    """A follow-up keeps its first message's variant; otherwise Thompson sampling draws one (with its probability)."""
    previous = _last_message(s.profile, campaign.id) if s.follow_up else None
    if previous is not None and previous.variant:
        return campaign.variant(previous.variant).id, 1.0
    probabilities = experiments.allocation(campaign, arms(campaign))
    variant = experiments.draw(probabilities, did)
    return variant, probabilities[variant]


@dataclass(frozen=True)
class _Linker:
    """Links of one message: pages of the shop with its attribution parameters (``nextbest.core.links``)."""

    site_url: str
    cart_url: str
    channel: Channel
    campaign: Campaign
    variant: str | None
    decision_id: str

    def __call__(self, url: str) -> str:
        return links.tracked(url, self.channel, self.campaign.id, self.variant, self.decision_id)

    def product(self, product: Product | None) -> str | None:
        """The product's page, if the shop still has one (a removed product's page is gone)."""
        if product is None or product.url is None or product.availability == "removed":
            return None
        return self(product.url)

    def category(self, product: Product | None) -> str | None:
        """The page of the product's category, if the catalog gives one (never a page made up from a name)."""
        return self(product.category_url) if product and product.category and product.category_url else None


def _variables(s: _Situation, link: _Linker, discount: Decimal, step: int) -> dict[str, object]:
    """What a template sees. Links go to the shop's own pages: ``link`` to the cart for a cart campaign, to the
    last product viewed for a browse campaign (when it is in stock), else home; every product to its page, and its
    category (``category_url``; ``category``: the last product viewed's) to the category's page."""
    profile, catalog = s.profile, s.catalog or {}
    cart = profile.cart
    owned = {i.product_id for i in cart.items} if cart else set()
    cart_url, home_url = link(link.cart_url), link(links.home(link.site_url))
    items = []
    for line in cart.items if cart else []:
        product = catalog.get(line.product_id)
        items.append(
            line.model_dump()
            | {
                "name": product.name if product and product.name else line.name,
                "category": product.category if product and product.category else line.category,
                "category_url": link.category(product),
                "url": link.product(product) or cart_url,
                "image_url": product.image_url if product else None,
                "price": product.price if product and product.price is not None else line.unit_price,
                "in_stock": product is None or product.availability == "in_stock",
            }
        )
    changed_id = changed_product(profile, s.trigger) if link.campaign.trigger.kind == "catalog" else None
    changed = _shown(catalog.get(changed_id), link, home_url) if changed_id else None
    shown = []
    for product_id in [p for p in s.recommended if p not in owned and p != changed_id][:3]:
        product = catalog.get(product_id)
        if (found := _shown(product, link, home_url)) is not None:
            shown.append(found)
        elif s.catalog is None:  # a lab's call without a catalog: the id is all there is to show
            shown.append(Shown(product_id, product_id, home_url, None, None, cart.currency if cart else "USD"))
    main = changed.url if changed else home_url
    last = catalog.get(profile.views[-1].product_id) if profile.views else None
    if link.campaign.trigger.kind == "cart_abandoned":
        main = cart_url
    elif link.campaign.trigger.kind == "browse_abandoned":
        main = (link.product(last) if recommendable(last) else None) or home_url
    return {
        "first_name": profile.first_name,
        "items": items,
        "cart_value": cart.value if cart else 0,
        "currency": cart.currency if cart else "USD",
        "link": main,
        "cart_url": cart_url,
        "home_url": home_url,
        "category": Category(last.category, url) if last and last.category and (url := link.category(last)) else None,
        "recommendations": shown,
        "product": changed,
        "discount_percent": int(discount) if discount == int(discount) else discount,
        "step": step,
    }


def _shown(product: Product | None, link: _Linker, home_url: str) -> Shown | None:
    """A catalog product as templates show it, linking to its page (home if it has none now); None if the catalog
    cannot show it (no name or price)."""
    if product is None or not product.name or product.price is None:
        return None
    return Shown(product.product_id, product.name, link.product(product) or home_url, product.image_url,
                 product.price, product.currency, product.category, link.category(product))  # fmt: skip


def record(profile: Profile, decision: Decision, campaigns: dict[str, Campaign], time_zone: str = "UTC") -> Profile:
    """The profile after a decision: the trigger handled, the message logged, a follow-up armed, a yearly date's
    next occurrence armed (in the customer's zone, else ``time_zone``: a dormant customer still has a birthday)."""
    p = profile.model_copy(deep=True)
    if decision.action == "defer":
        return p
    if decision.trigger == LAPSE:
        p = checked(p, decision.trigger_due_at, decision.decided_at)
    if p.triggers.get(decision.trigger) == decision.trigger_due_at:
        del p.triggers[decision.trigger]
        if (date := DateSpec.parse(decision.trigger)) is not None:
            after = max(decision.trigger_due_at, decision.decided_at - DATE_GRACE)
            if (upcoming := next_date(p, date, after, time_zone)) is not None:
                p.triggers[decision.trigger] = upcoming
    p.handled[decision.trigger] = decision.trigger_due_at
    if decision.action in ("send", "holdout") and decision.campaign_id and decision.channel:
        campaign = campaigns[decision.campaign_id]
        if not any(m.decision_id == decision.decision_id for m in p.messages):
            p.messages.append(
                MessageLog(
                    decision_id=decision.decision_id,
                    campaign_id=campaign.id,
                    channel=decision.channel,
                    at=decision.decided_at,
                    variant=decision.variant,
                    held_out=decision.action == "holdout",
                    global_control=decision.group == "global_control",
                    step=decision.step,
                    conflict_group=campaign.conflict_group,
                    fulfilment=campaign.offer.fulfilment,
                    products=decision.products[:10],
                    credit_until=episode_end(campaign, decision.decided_at) if decision.step == 0 else None,
                    coupon=decision.coupon,
                )
            )
            p.messages = sorted(p.messages, key=lambda m: (m.at, m.decision_id))[-MAX_MESSAGES:]
        if campaign.follow_up and decision.step < campaign.follow_up.max_steps:
            p.triggers[FOLLOW_UP + campaign.id] = decision.decided_at + timedelta(hours=campaign.follow_up.after_hours)
    return p


def checked(profile: Profile, due_at: datetime, now: datetime) -> Profile:
    """The profile after its lapse check due at ``due_at``: the check handled, the next one set (decided or not,
    so a buyer is looked at again a week later, never every time a poll passes)."""
    p = profile.model_copy(deep=True)
    if p.triggers.get(LAPSE) == due_at:
        p.handled[LAPSE] = due_at
        p.triggers[LAPSE] = now + LAPSE_CHECK_EVERY
    return p


def record_fallback(profile: Profile, decision: Decision, now: datetime) -> Profile | None:
    """The profile after a fallback of a logged message goes out on another channel (what the caps count),
    or None if there is nothing to log (a retry on the same channel, an entry no longer kept)."""
    if decision.fallback_of is None or decision.channel is None:
        return None
    p = profile.model_copy(deep=True)
    for message in p.messages:
        if message.decision_id == decision.fallback_of:
            message.fallbacks.append(Fallback(channel=decision.channel, at=now))
            return p
    return None


def limits(decision: Decision, campaigns: dict[str, Campaign]) -> list[Counter]:
    """What a send takes from its campaign's hourly send cap and offer budget, each refused when full (taken from
    the decider's leased blocks: ``nextbest.decide.leases``)."""
    if decision.action != "send" or decision.campaign_id is None:
        return []
    campaign = campaigns[decision.campaign_id]
    taken = []
    if campaign.max_sends_per_hour is not None:
        hour = decision.decided_at.strftime("%Y-%m-%dT%H")
        taken.append(
            Counter(
                f"s:{campaign.id}", f"HOUR#{hour}", Decimal(1), Decimal(campaign.max_sends_per_hour),
                expires_at=decision.decided_at + timedelta(days=2), refusal="send rate cap reached this hour",
            )
        )  # fmt: skip
    if campaign.budget is not None and decision.offer_cost > 0:
        taken.append(
            Counter(f"s:{campaign.id}", "BUDGET", decision.offer_cost, campaign.budget, refusal="budget spent")
        )
    return taken
