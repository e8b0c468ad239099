"""The customer profile and the pure rules that change it.

Everything here is deterministic and free of I/O: ``apply`` folds one event into a profile and ``merge``
combines two profiles of one person. The store (``nextbest.store``) decides *which* profile an event
belongs to and writes the result conditionally.

Every list is bounded so a profile can never approach DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.events import (
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
MAX_ORDERS = 20
MAX_EVENT_IDS = 200
MAX_MESSAGES = 20
MAX_ANONYMOUS_IDS = 10

KIND_RANK = {"c": 0, "e": 1, "p": 2, "a": 3}
"""Which identifier names a merged profile: a customer id over an e-mail over a phone over a cookie."""


def identity_keys(ids: Identifiers) -> list[str]:
    """Keys of the identity table for each identifier present, e.g. ``c:cus_42``, ``e:ann@x.org``."""
    keys = []
    if ids.customer_id:
        keys.append(f"c:{ids.customer_id}")
    if ids.email:
        keys.append(f"e:{ids.email}")
    if ids.phone:
        keys.append(f"p:{ids.phone}")
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


class Order(_Model):
    order_id: str
    at: datetime
    total: Decimal


class MessageLog(_Model):
    decision_id: str
    campaign_id: str
    channel: Channel
    at: datetime


class Profile(_Model):
    key: str = Field(description="Canonical identity key; the item's partition key.")
    identifiers: list[str] = Field(default_factory=list, description="Every identity key merged into it.")
    version: int = 0
    first_name: str | None = None
    time_zone: str | None = None
    email: str | None = None
    email_status: Literal["ok", "bounced", "complained"] = "ok"
    phone: str | None = None
    consent: dict[Channel, Consent] = Field(default_factory=dict)
    views: list[View] = Field(default_factory=list)
    cart: Cart | None = None
    orders: list[Order] = Field(default_factory=list)
    order_count: int = 0
    revenue: Decimal = Decimal(0)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    triggers: dict[str, datetime] = Field(default_factory=dict, description="Pending trigger -> due time.")
    messages: list[MessageLog] = Field(default_factory=list)
    event_ids: list[str] = Field(default_factory=list, description="Recent event ids, for idempotency.")
    last_event_at: datetime | None = None

    def has_consent(self, channel: Channel) -> bool:
        consent = self.consent.get(channel)
        return bool(consent and consent.granted)

    def reachable(self, channel: Channel) -> bool:
        if channel == "email":
            return self.email is not None and self.email_status == "ok"
        if channel == "sms":
            return self.phone is not None
        return False

    @property
    def customer_id(self) -> str | None:
        return self.key[2:] if self.key.startswith("c:") else None

    def next_due(self) -> datetime | None:
        return min(self.triggers.values(), default=None)


TriggerDelays = dict[str, timedelta]


def new_profile(keys: list[str]) -> Profile:
    return Profile(key=canonical_key(keys), identifiers=sorted(keys))


def apply(profile: Profile, kind: str, event: EventDetail, delays: TriggerDelays) -> Profile:
    """Fold one validated event into a copy of ``profile``. Replaying an event id changes nothing.

    Late events never overwrite newer state: carts and consents keep the newest timestamp.
    """
    if event.event_id in profile.event_ids:
        return profile
    p = profile.model_copy(deep=True)
    p.event_ids = [*p.event_ids, event.event_id][-MAX_EVENT_IDS:]
    p.last_event_at = max(filter(None, [p.last_event_at, event.occurred_at]))
    _learn_contact(p, event)
    at = event.occurred_at
    if isinstance(event, ProductViewed):
        views = [*p.views, View(product_id=event.product_id, category=event.category, at=at)]
        p.views = sorted(views, key=lambda v: v.at)[-MAX_VIEWS:]
    elif isinstance(event, CartUpdated):
        if p.cart is None or at >= p.cart.updated_at:
            p.cart = Cart(items=list(event.items), currency=event.currency, updated_at=at)
            _schedule_cart_trigger(p, delays)
    elif isinstance(event, OrderPlaced):
        _record_order(p, Order(order_id=event.order_id, at=at, total=event.total))
    elif isinstance(event, ConsentUpdated):
        current = p.consent.get(event.channel)
        if current is None or at >= current.at:
            p.consent[event.channel] = Consent(granted=event.granted, at=at, source=event.source)
    elif isinstance(event, CustomerIdentified):
        p.first_name = event.first_name or p.first_name
        p.time_zone = event.time_zone or p.time_zone
    return p


def _learn_contact(p: Profile, event: EventDetail) -> None:
    """An event naming an e-mail or phone makes it the profile's current address for that channel."""
    if event.email and event.email != p.email:
        p.email, p.email_status = event.email, "ok"
    if event.phone:
        p.phone = event.phone


def _record_order(p: Profile, order: Order) -> None:
    if any(o.order_id == order.order_id for o in p.orders):
        return
    p.orders = sorted([*p.orders, order], key=lambda o: o.at)[-MAX_ORDERS:]
    p.order_count += 1
    p.revenue += order.total
    p.first_order_at = min(filter(None, [p.first_order_at, order.at]))
    p.last_order_at = max(filter(None, [p.last_order_at, order.at]))
    if p.cart is not None and order.at >= p.cart.updated_at:
        # The purchase is what the cart was for: the abandonment reason is gone.
        p.cart = Cart(items=[], currency=p.cart.currency, updated_at=order.at)
        p.triggers.pop("cart_abandoned", None)


def _schedule_cart_trigger(p: Profile, delays: TriggerDelays) -> None:
    delay = delays.get("cart_abandoned")
    if delay is None or p.cart is None:
        return
    if p.cart.items:
        p.triggers["cart_abandoned"] = p.cart.updated_at + delay
    else:
        p.triggers.pop("cart_abandoned", None)


def merge(a: Profile, b: Profile) -> Profile:
    """One profile of one person from two; symmetric, so arrival order cannot change the result.

    Opt-outs win over grants (the strictest consent), histories are united without counting an order twice.
    """
    keys = sorted(set(a.identifiers) | set(b.identifiers) | {a.key, b.key})
    first, second = sorted([a, b], key=lambda p: (KIND_RANK[p.key[0]], p.key))
    m = first.model_copy(deep=True)
    m.key = canonical_key(keys)
    m.identifiers = _bound_anonymous(keys)
    m.version = 0
    m.first_name = first.first_name or second.first_name
    m.time_zone = first.time_zone or second.time_zone
    m.email = first.email or second.email
    m.phone = first.phone or second.phone
    m.email_status = (
        "ok"
        if first.email_status == "ok" and second.email_status == "ok"
        else (first.email_status if first.email_status != "ok" else second.email_status)
    )
    m.consent = {}
    for channel in sorted(set(first.consent) | set(second.consent)):
        options = [c for c in (first.consent.get(channel), second.consent.get(channel)) if c]
        denied = [c for c in options if not c.granted]
        m.consent[channel] = max(denied or options, key=lambda c: c.at)  # type: ignore[index]
    m.views = sorted({(v.at, v.product_id): v for v in [*first.views, *second.views]}.values(), key=lambda v: v.at)[
        -MAX_VIEWS:
    ]
    carts = [c for c in (first.cart, second.cart) if c]
    m.cart = max(carts, key=lambda c: c.updated_at) if carts else None
    orders = {o.order_id: o for o in [*second.orders, *first.orders]}
    shared = set(o.order_id for o in first.orders) & set(o.order_id for o in second.orders)
    m.orders = sorted(orders.values(), key=lambda o: (o.at, o.order_id))[-MAX_ORDERS:]
    m.order_count = first.order_count + second.order_count - len(shared)
    m.revenue = (
        first.revenue + second.revenue - sum((o.total for o in first.orders if o.order_id in shared), Decimal(0))
    )
    m.first_order_at = min(filter(None, [first.first_order_at, second.first_order_at]), default=None)
    m.last_order_at = max(filter(None, [first.last_order_at, second.last_order_at]), default=None)
    m.triggers = {}
    for name in sorted(set(first.triggers) | set(second.triggers)):
        m.triggers[name] = min(t for t in (first.triggers.get(name), second.triggers.get(name)) if t)
    if m.cart is not None and not m.cart.items:
        m.triggers.pop("cart_abandoned", None)
    m.messages = sorted(
        {x.decision_id: x for x in [*first.messages, *second.messages]}.values(),
        key=lambda x: (x.at, x.decision_id),
    )[-MAX_MESSAGES:]
    m.event_ids = sorted(set(first.event_ids) | set(second.event_ids))[-MAX_EVENT_IDS:]
    m.last_event_at = max(filter(None, [first.last_event_at, second.last_event_at]), default=None)
    return m


def _bound_anonymous(keys: list[str]) -> list[str]:
    """Keep every durable identifier but only the newest-sorted cookies; old cookie redirects still resolve."""
    durable = [k for k in keys if not k.startswith("a:")]
    cookies = [k for k in keys if k.startswith("a:")]
    return sorted(durable + cookies[-MAX_ANONYMOUS_IDS:])
