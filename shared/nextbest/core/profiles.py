"""The customer profile and the pure rules that change it.

Everything here is deterministic and free of I/O: ``apply`` folds one event into a profile and ``merge``
combines two profiles of one person. The store (``nextbest.aws.store``) decides *which* profile an event
belongs to and writes the result conditionally.

Every rule is written so the result depends on *what* happened, not on the order events arrived in:
values carry the time they were true and the newest wins (ties broken by value), histories are sets,
affinities are sums. That is what lets merges happen in any order and still agree (a property test
checks it). Every list is bounded so a profile can never approach DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.core.events import (
    CartUpdated,
    Channel,
    ConsentUpdated,
    CustomerIdentified,
    EventDetail,
    Identifiers,
    LineItem,
    OrderPlaced,
    ProductViewed,
)

MAX_VIEWS = 20
MAX_ORDERS = 50
MAX_MESSAGES = 20
MAX_IDENTIFIERS_PER_KIND = 10
MAX_CATEGORIES = 30
MAX_PRODUCTS = 50
AFFINITY_HALF_LIFE = timedelta(days=30)
AFFINITY_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Affinities are stored as sums of ``weight * 2^((t - epoch) / half_life)``: adding is commutative, and
the decayed score at any time is the stored sum times ``2^(-(now - epoch) / half_life)``."""
WEIGHTS = {"view": 1.0, "cart": 3.0, "order": 5.0}

KIND_RANK = {"c": 0, "e": 1, "p": 2, "t": 3, "a": 4}
"""Which identifier names a merged profile: customer id, then e-mail, phone, device token, cookie."""
STATUS_RANK = {"ok": 0, "bounced": 1, "complained": 2}


def identity_keys(ids: Identifiers) -> list[str]:
    """Keys of the identity table for each identifier present, e.g. ``c:cus_42``, ``e:ann@x.org``."""
    keys = []
    if ids.customer_id:
        keys.append(f"c:{ids.customer_id}")
    if ids.email:
        keys.append(f"e:{ids.email}")
    if ids.phone:
        keys.append(f"p:{ids.phone}")
    if ids.device_token:
        keys.append(f"t:{ids.device_token}")
    if ids.anonymous_id:
        keys.append(f"a:{ids.anonymous_id}")
    return keys


def canonical_key(keys: list[str] | set[str]) -> str:
    """The surviving key of a set of linked identifiers; independent of the order they were seen in."""
    return min(keys, key=lambda k: (KIND_RANK[k[0]], k))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Consent(_Model):
    granted: bool
    at: datetime
    source: str
    withdrawn_at: datetime | None = Field(
        default=None,
        description="Of a grant: the newest opt-out known before it on this channel, whatever order they came in; "
        "what tells a re-subscription from a grant repeated. None: none known (an opt-out's own time says it).",
    )

    def rank(self) -> tuple[datetime, bool, str]:
        """The newest statement wins; at the same instant an opt-out wins."""
        return (self.at, not self.granted, self.source)


class View(_Model):
    product_id: str
    category: str | None = None
    at: datetime


class Cart(_Model):
    items: list[LineItem] = Field(default_factory=list)
    currency: str = "USD"
    updated_at: datetime

    @property
    def value(self) -> Decimal:
        return sum((i.unit_price * i.quantity for i in self.items), Decimal(0))

    def rank(self) -> tuple[datetime, int, str]:
        """Newest wins; at the same instant an emptied cart (a purchase) wins, then a stable order."""
        items = json.dumps([i.model_dump(mode="json") for i in self.items], sort_keys=True)
        return (self.updated_at, 0 if self.items else 1, items)


class Order(_Model):
    order_id: str
    at: datetime
    total: Decimal


class Fallback(_Model):
    """The same message sent again on another channel, because the first one failed."""

    channel: Channel
    at: datetime


class MessageLog(_Model):
    """A message decided for this customer: sent, or held out ("would have sent") so that the holdout is
    capped, cooled down and attributed exactly like the customers who got it."""

    decision_id: str
    campaign_id: str
    channel: Channel
    at: datetime
    variant: str | None = None
    held_out: bool = False
    global_control: bool = Field(default=False, description="Held out by the global control, not the campaign's.")
    step: int = Field(default=0, description="0 for the first message, n for the n-th follow-up.")
    conflict_group: str | None = None
    fulfilment: Literal["any", "online_only", "in_store_only"] = "any"
    products: list[str] = Field(default_factory=list, description="What the message promoted.")
    converted_at: datetime | None = Field(default=None, description="First order attributed to it.")
    revenue: Decimal = Field(default=Decimal(0), description="Order value attributed to it so far.")
    credit_until: datetime | None = Field(
        default=None, description="A first message (step 0): the end of its episode's attribution window."
    )
    fallbacks: list[Fallback] = Field(
        default_factory=list, description="Where it went again when its channel failed (counted by the caps)."
    )


class Profile(_Model):
    key: str = Field(description="Canonical identity key; the item's partition key.")
    identifiers: list[str] = Field(default_factory=list, description="Every identity key merged into it.")
    version: int = 0
    first_name: str | None = None
    time_zone: str | None = None
    email: str | None = None
    email_status: Literal["ok", "bounced", "complained"] = "ok"
    soft_bounces: int = Field(default=0, description="Consecutive transient bounces of the current e-mail.")
    last_engaged_at: datetime | None = None
    phone: str | None = None
    stamps: dict[str, datetime] = Field(default_factory=dict, description="When each contact field was true.")
    consent: dict[Channel, Consent] = Field(default_factory=dict)
    views: list[View] = Field(default_factory=list)
    cart: Cart | None = None
    orders: list[Order] = Field(default_factory=list)
    order_count: int = 0
    revenue: Decimal = Decimal(0)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    categories: dict[str, float] = Field(default_factory=dict, description="Decayed affinity sums.")
    products: dict[str, float] = Field(default_factory=dict, description="Decayed affinity sums.")
    triggers: dict[str, datetime] = Field(default_factory=dict, description="Pending trigger -> due time.")
    handled: dict[str, datetime] = Field(
        default_factory=dict, description="Trigger -> the due time already decided, so it is not raised again."
    )
    messages: list[MessageLog] = Field(default_factory=list)
    last_event_at: datetime | None = None
    undeliverable: list[str] = Field(
        default_factory=list,
        description="Identity keys (``p:…`` phones, ``t:…`` device tokens) a provider said cannot receive messages.",
    )

    def has_consent(self, channel: Channel) -> bool:
        consent = self.consent.get(channel)
        return bool(consent and consent.granted)

    def reachable(self, channel: Channel) -> bool:
        if channel == "email":
            return self.email is not None and self.email_status == "ok"
        if channel == "sms":
            return self.phone is not None and f"p:{self.phone}" not in self.undeliverable
        return bool(self.push_tokens)

    @property
    def customer_id(self) -> str | None:
        return self.key[2:] if self.key.startswith("c:") else None

    @property
    def device_tokens(self) -> list[str]:
        return [k[2:] for k in self.identifiers if k.startswith("t:")]

    @property
    def push_tokens(self) -> list[str]:
        """Device tokens push may still use (the platform has not called them invalid)."""
        return [t for t in self.device_tokens if f"t:{t}" not in self.undeliverable]

    def recency(self, now: datetime) -> timedelta | None:
        return now - self.last_order_at if self.last_order_at else None

    @property
    def inter_purchase_interval(self) -> timedelta | None:
        """Mean time between orders (the replenishment clock), from the first and last order."""
        if self.order_count < 2 or not (self.first_order_at and self.last_order_at):
            return None
        return (self.last_order_at - self.first_order_at) / (self.order_count - 1)

    def affinities(self, kind: Literal["categories", "products"], now: datetime) -> dict[str, float]:
        """Scores decayed to ``now``, highest first."""
        factor = 2 ** (-(now - AFFINITY_EPOCH) / AFFINITY_HALF_LIFE)
        scores = self.categories if kind == "categories" else self.products
        return dict(sorted(((k, v * factor) for k, v in scores.items()), key=lambda kv: (-kv[1], kv[0])))


TriggerDelays = dict[str, timedelta]


def new_profile(keys: list[str]) -> Profile:
    return Profile(key=canonical_key(keys), identifiers=sorted(keys))


def apply(profile: Profile, kind: str, event: EventDetail, delays: TriggerDelays) -> Profile:
    """Fold one validated event into a copy of ``profile``.

    Exactly-once is the store's job (an event marker written with the profile); here, replays of state
    (carts, consent, contact details, views) are harmless anyway, while counters would count twice.
    """
    p = profile.model_copy(deep=True)
    at = event.occurred_at
    p.last_event_at = max(filter(None, [p.last_event_at, at]))
    _stamp(p, "email", event.email, at)
    _stamp(p, "phone", event.phone, at)
    if isinstance(event, ProductViewed):
        p.views = _bounded_views([*p.views, View(product_id=event.product_id, category=event.category, at=at)])
        _like(p, event.product_id, event.category, WEIGHTS["view"], at)
    elif isinstance(event, CartUpdated):
        _offer_cart(p, Cart(items=list(event.items), currency=event.currency, updated_at=at))
        for item in event.items:
            _like(p, item.product_id, item.category, WEIGHTS["cart"], at)
    elif isinstance(event, OrderPlaced):
        if all(o.order_id != event.order_id for o in p.orders):
            _record_order(p, Order(order_id=event.order_id, at=at, total=event.total))
            currency = p.cart.currency if p.cart else event.currency
            _offer_cart(p, Cart(items=[], currency=currency, updated_at=at))  # what the cart was for
            for item in event.items:
                _like(p, item.product_id, item.category, WEIGHTS["order"], at)
    elif isinstance(event, ConsentUpdated):
        offer_consent(p, event.channel, Consent(granted=event.granted, at=at, source=event.source))
    elif isinstance(event, CustomerIdentified):
        _stamp(p, "first_name", event.first_name, at)
        _stamp(p, "time_zone", event.time_zone, at)
    set_triggers(p, delays)
    return p


def _stamp(p: Profile, field: str, value: str | None, at: datetime) -> None:
    """Set a contact field if this value is newer than the one held (ties: the greater value)."""
    if value is None:
        return
    current, since = getattr(p, field), p.stamps.get(field)
    if since is None or (at, value) > (since, current or ""):
        if field == "email" and value != current:
            p.email_status, p.soft_bounces = "ok", 0
        setattr(p, field, value)
        p.stamps[field] = at


def _offer_cart(p: Profile, cart: Cart) -> None:
    if p.cart is None or cart.rank() > p.cart.rank():
        p.cart = cart


def offer_consent(p: Profile, channel: Channel, consent: Consent) -> Profile:
    """Record a statement of consent if it is the newest (an opt-out wins a tie); a grant keeps the newest opt-out
    seen before it, whatever order they came in (a maximum, so merges stay symmetric). Returns the profile."""
    current = p.consent.get(channel)
    newest = consent if current is None or consent.rank() > current.rank() else current
    withdrawn = [t for c in (current, consent) if c for t in (c.withdrawn_at, None if c.granted else c.at) if t]
    p.consent[channel] = newest.model_copy(
        update={"withdrawn_at": max(withdrawn) if newest.granted and withdrawn else None}
    )
    return p


def _like(p: Profile, product_id: str, category: str | None, weight: float, at: datetime) -> None:
    score = weight * 2 ** ((at - AFFINITY_EPOCH) / AFFINITY_HALF_LIFE)
    p.products[product_id] = p.products.get(product_id, 0.0) + score
    if category:
        p.categories[category] = p.categories.get(category, 0.0) + score
    p.products = _top(p.products, MAX_PRODUCTS)
    p.categories = _top(p.categories, MAX_CATEGORIES)


def _top(scores: dict[str, float], limit: int) -> dict[str, float]:
    if len(scores) <= limit:
        return scores
    return dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])


def _bounded_views(views: list[View]) -> list[View]:
    unique = {(v.at, v.product_id): v for v in views}
    return [unique[k] for k in sorted(unique)][-MAX_VIEWS:]


def _record_order(p: Profile, order: Order) -> None:
    p.orders = sorted([*p.orders, order], key=lambda o: (o.at, o.order_id))[-MAX_ORDERS:]
    p.order_count += 1
    p.revenue += order.total
    p.first_order_at = min(filter(None, [p.first_order_at, order.at]))
    p.last_order_at = max(filter(None, [p.last_order_at, order.at]))


def set_triggers(p: Profile, delays: TriggerDelays) -> None:
    """The event-driven triggers, each due ``delay`` after its clock, while its reason holds:

    * cart_abandoned: the cart last changed and still holds items;
    * browse_abandoned: the last product view, with no cart change or order since;
    * replenishment: the customer's own next-purchase date (last order + mean interval; delay < 0);
    * post_purchase: the last order.

    A trigger already decided for the same due time is not raised again.
    """
    cart_at = p.cart.updated_at if p.cart is not None and p.cart.items else None
    viewed = p.views[-1].at if p.views else None
    if viewed and any(t and t >= viewed for t in (p.cart.updated_at if p.cart else None, p.last_order_at)):
        viewed = None
    interval = p.inter_purchase_interval
    clocks = {
        "cart_abandoned": cart_at,
        "browse_abandoned": viewed,
        "replenishment": p.last_order_at + interval if p.last_order_at and interval else None,
        "post_purchase": p.last_order_at,
    }
    for name, started in clocks.items():
        delay = delays.get(name)
        due = started + delay if started is not None and delay is not None else None
        if due is None or p.handled.get(name) == due:
            p.triggers.pop(name, None)
        else:
            p.triggers[name] = due


def merge(a: Profile, b: Profile, delays: TriggerDelays) -> Profile:
    """One profile of one person from two; symmetric, so arrival order cannot change the result.

    The newest statement of consent wins and an opt-out wins ties: an opt-out on either side beats every
    grant made before it, while a re-subscription made after it is honoured. Orders are counted once.
    """
    keys = sorted(set(a.identifiers) | set(b.identifiers) | {a.key, b.key})
    m = Profile(key=canonical_key(keys), identifiers=bound_identifiers(keys))
    for field in ("first_name", "time_zone", "email", "phone"):
        for side in (a, b):
            value, since = getattr(side, field), side.stamps.get(field)
            if value is not None and since is not None:
                _stamp(m, field, value, since)
    statuses = [s.email_status for s in (a, b) if s.email == m.email]
    m.email_status = max(statuses, key=STATUS_RANK.__getitem__) if statuses else "ok"
    for side in (a, b):
        for channel, consent in side.consent.items():
            offer_consent(m, channel, consent)
        if side.cart is not None:
            _offer_cart(m, side.cart)
    m.views = _bounded_views([*a.views, *b.views])
    orders = {o.order_id: o for o in [*a.orders, *b.orders]}
    shared = {o.order_id for o in a.orders} & {o.order_id for o in b.orders}
    m.orders = sorted(orders.values(), key=lambda o: (o.at, o.order_id))[-MAX_ORDERS:]
    m.order_count = a.order_count + b.order_count - len(shared)
    m.revenue = a.revenue + b.revenue - sum((o.total for o in a.orders if o.order_id in shared), Decimal(0))
    m.first_order_at = min(filter(None, [a.first_order_at, b.first_order_at]), default=None)
    m.last_order_at = max(filter(None, [a.last_order_at, b.last_order_at]), default=None)
    for kind in ("categories", "products"):
        summed: dict[str, float] = {}
        for side in (a, b):
            for k, v in getattr(side, kind).items():
                summed[k] = summed.get(k, 0.0) + v
        setattr(m, kind, _top(summed, MAX_CATEGORIES if kind == "categories" else MAX_PRODUCTS))
    for name in sorted(set(a.handled) | set(b.handled)):
        m.handled[name] = max(t for t in (a.handled.get(name), b.handled.get(name)) if t)
    for name in sorted(set(a.triggers) | set(b.triggers)):
        m.triggers[name] = min(t for t in (a.triggers.get(name), b.triggers.get(name)) if t)
    set_triggers(m, delays)
    m.messages = sorted(
        {x.decision_id: x for x in [*a.messages, *b.messages]}.values(), key=lambda x: (x.at, x.decision_id)
    )[-MAX_MESSAGES:]
    m.last_event_at = max(filter(None, [a.last_event_at, b.last_event_at]), default=None)
    m.undeliverable = bound_identifiers(set(a.undeliverable) | set(b.undeliverable))
    return m


def bound_identifiers(keys: list[str] | set[str]) -> list[str]:
    """At most ``MAX_IDENTIFIERS_PER_KIND`` keys of each kind, the smallest (so the canonical key stays).

    The profile's list only serves to repoint redirects on a merge; a key dropped from it keeps its
    redirect item, which still resolves (following at most a few hops).
    """
    kept: list[str] = []
    for kind in KIND_RANK:
        kept += sorted(k for k in set(keys) if k[0] == kind)[:MAX_IDENTIFIERS_PER_KIND]
    return sorted(kept)


def address_hash(key: str) -> str:
    """A stable, non-reversible name for an identity key (``t:<token>``), kept where personal data is not."""
    return hashlib.sha256(key.encode()).hexdigest()


def mark_undeliverable(profile: Profile, keys: Iterable[str]) -> Profile:
    """Record that a provider called these identity keys (``p:…``, ``t:…``) unable to receive."""
    profile.undeliverable = bound_identifiers({*profile.undeliverable, *keys})
    return profile
