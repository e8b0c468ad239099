"""The customer profile and the pure rules that change it.

Everything here is deterministic and free of I/O: ``apply`` folds one event into a profile, ``merge``
combines two profiles of one person and ``links`` says which profiles an event may join. The store
(``nextbest.aws.store``) finds the profiles and writes the result conditionally.

**Trust.** Only the shop's ``customer_id`` proves who someone is: the shop puts it on an event only when the
customer is signed in (or in its own back office). Every other identifier is a *claim*. An event whose
``customer_id`` is the profile's is *verified*; on a known customer's profile (one with a customer id) only
verified events set the e-mail address and phone number, and the customer is never sent to an address or
device token that only claims named (``Profile.claimed``). Claims fill an anonymous profile's empty contact
fields (the first address given stays). Two customers are never merged (``links``). A grant of consent covers
the address it was given for (``Consent.address``), so a new address needs a consent of its own; an opt-out
covers the channel.

Every rule is written so the result depends on *what* happened, not on the order events arrived in:
values carry the time they were true and the newest wins (ties broken by value), histories are sets,
affinities are sums. That is what lets merges happen in any order and still agree (a property test
checks it). Every list is bounded so a profile can never approach DynamoDB's 400 KB item limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import reduce
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.core.coupons import issued_by
from nextbest.core.events import (
    CartUpdated,
    Channel,
    ConsentUpdated,
    CustomerIdentified,
    CustomEvent,
    EventDetail,
    Identifiers,
    LineItem,
    OrderPlaced,
    ProductViewed,
    WishlistUpdated,
)
from nextbest.core.triggers import DATE_GRACE, CatalogSpec, DateSpec, EventSpec, Interest, Watch, strength, zone_of

MAX_VIEWS = 20
MAX_ORDERS = 50
MAX_MESSAGES = 20
MAX_IDENTIFIERS_PER_KIND = 10
MAX_CATEGORIES = 30
MAX_PRODUCTS = 50
MAX_OCCURRENCES = 10
"""Custom events remembered: the latest of each name a campaign triggers on, at most this many names (each at most
``events.MAX_PROPERTIES_BYTES`` of properties), so a profile stays small whatever a shop publishes."""
MAX_DATES = 20
MAX_INTERESTS = 50
"""Products a profile remembers the customer's interest in (the most recent), for back-in-stock and price-drop
campaigns (``nextbest.core.interest``): 5 to 25 bytes each once compressed, as alike as the shop's product ids are."""
INTEREST_TTL = timedelta(days=30)
"""How long an interest lasts after it was recorded: its entry in the interest index expires then (DynamoDB TTL)."""
INTEREST_REFRESH = timedelta(days=7)
"""An interest shown again this long after it was recorded is recorded again (its index entry rewritten, its expiry
pushed back); sooner, it costs nothing. So an interest lasts 23 to 30 days after the customer last showed it."""
AFFINITY_HALF_LIFE = timedelta(days=30)
AFFINITY_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Affinities are stored as sums of ``weight * 2^((t - epoch) / half_life)``: adding is commutative, and
the decayed score at any time is the stored sum times ``2^(-(now - epoch) / half_life)``."""
WEIGHTS = {"view": 1.0, "wishlist": 2.0, "cart": 3.0, "order": 5.0}

KIND_RANK = {"c": 0, "e": 1, "p": 2, "t": 3, "a": 4}
"""Which identifier names a merged profile: customer id, then e-mail, phone, device token, cookie."""
STATUS_RANK = {"ok": 0, "bounced": 1, "complained": 2}
CONTACTS: dict[str, tuple[str, Channel]] = {"email": ("e", "email"), "phone": ("p", "sms")}
"""Contact fields: the kind of their identity key and the channel whose consent they carry."""


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
    address: str | None = Field(
        default=None,
        description="The e-mail address or phone number a statement was made for (the event's own, if it named "
        "one). None: the profile's address at the time, bound to it when the address changes. A grant covers its "
        "address only; an opt-out covers the channel.",
    )

    def rank(self) -> tuple[datetime, bool, str, str]:
        """The newest statement wins; at the same instant an opt-out wins (then a stable order)."""
        return (self.at, not self.granted, self.source, self.address or "")


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


class Wishlist(_Model):
    """The customer's wishlist as the shop last sent it (``wishlist.updated``): its products, in its order."""

    items: list[str] = Field(default_factory=list)
    updated_at: datetime

    def rank(self) -> tuple[datetime, list[str]]:
        """Newest wins; at the same instant, a stable order (so merges are symmetric)."""
        return (self.updated_at, self.items)


class Order(_Model):
    order_id: str
    at: datetime
    total: Decimal
    decision_id: str | None = Field(
        default=None, description="The message the customer came from (``order.placed``'s ``nb``), if the shop said."
    )
    redeemed: str | None = Field(default=None, description="The message whose coupon code the order used.")


class Occurrence(_Model):
    """The latest custom event of one name: what its trigger's clock starts from and what ``where`` reads."""

    event_id: str
    at: datetime
    properties: dict[str, str | bool | int | float | None] = Field(default_factory=dict)

    def rank(self) -> tuple[datetime, str]:
        return (self.at, self.event_id)


class ProductInterest(_Model):
    """The customer's interest in a product, as last recorded in the interest index (``nextbest.core.interest``):
    the strongest of what they did (a view, the wishlist, a cart) and the day it was recorded."""

    kind: Interest = "view"
    at: date

    def rank(self) -> tuple[date, int]:
        return (self.at, strength(self.kind))


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
    coupon: str | None = Field(
        default=None, description="The offer's code it carried: an order redeeming it is credited to it."
    )
    redeemed_at: datetime | None = Field(default=None, description="When an order first used its code.")


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
    wishlist: Wishlist | None = None
    orders: list[Order] = Field(default_factory=list)
    order_count: int = 0
    revenue: Decimal = Decimal(0)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    categories: dict[str, float] = Field(default_factory=dict, description="Decayed affinity sums.")
    products: dict[str, float] = Field(default_factory=dict, description="Decayed affinity sums.")
    dates: dict[str, date] = Field(
        default_factory=dict, description="The customer's named dates (birthday…), each stamped in ``stamps``."
    )
    occurrences: dict[str, Occurrence] = Field(
        default_factory=dict,
        description="Custom event name (or ``catalog:<kind>``, a catalog change) -> its latest occurrence (watched "
        "names only).",
    )
    interests: dict[str, ProductInterest] = Field(
        default_factory=dict,
        description="Product id -> the interest recorded for it in the interest index, while catalog campaigns are "
        "approved (``nextbest.core.interest``).",
    )
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
    claimed: list[str] = Field(
        default_factory=list,
        description="Identity keys only events without this profile's customer id have named (claims, not proof): "
        "a known customer is never sent to a claimed address or device token.",
    )

    def has_consent(self, channel: Channel) -> bool:
        """A grant for this channel that covers the address messages would go to now."""
        consent = self.consent.get(channel)
        if not (consent and consent.granted):
            return False
        if channel == "push" or consent.address is None:
            return True
        return consent.address == (self.email if channel == "email" else self.phone)

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
        """Device tokens push may still use: the platform has not called them invalid, and on a known customer's
        profile a verified event named them."""
        barred = {*self.undeliverable, *(self.claimed if self.customer_id else ())}
        return [t for t in self.device_tokens if f"t:{t}" not in barred]

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


class TriggerDelays(dict[str, timedelta]):
    """Each trigger an event may set -> its delay (a date trigger's timing is in its name: its delay is 0), the
    time zone a date trigger fires in for a customer whose own is unknown (the policy's default zone), and what the
    catalog campaigns need recorded (``watch``: which interests).

    A plain dict works where no date or catalog trigger is concerned: its zone is UTC, it records no interest."""

    time_zone: str = "UTC"
    watch: Watch = Watch()

    def __init__(
        self, delays: Mapping[str, timedelta] | None = None, time_zone: str = "UTC", watch: Watch | None = None
    ) -> None:
        super().__init__(delays or {})
        self.time_zone = time_zone
        self.watch = watch or Watch()


LAPSE = "lapse"
"""A buyer's lapse check: due its delay after the last order, then its delay after each check (``engine.record``);
at-risk and win-back compete when it comes (no event says a customer is lapsing)."""


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
    _take_contact(p, event)
    if isinstance(event, ProductViewed):
        p.views = _bounded_views([*p.views, View(product_id=event.product_id, category=event.category, at=at)])
        _like(p, event.product_id, event.category, WEIGHTS["view"], at)
        _interested(p, event.product_id, "view", at, delays)
    elif isinstance(event, CartUpdated):
        _offer_cart(p, Cart(items=list(event.items), currency=event.currency, updated_at=at))
        for item in event.items:
            _like(p, item.product_id, item.category, WEIGHTS["cart"], at)
            _interested(p, item.product_id, "cart", at, delays)
    elif isinstance(event, WishlistUpdated):
        _wishlisted(p, event, delays)
    elif isinstance(event, OrderPlaced):
        if all(o.order_id != event.order_id for o in p.orders):
            _ordered(p, event)
    elif isinstance(event, ConsentUpdated):
        address = {"email": event.email, "sms": event.phone}.get(event.channel)
        offer_consent(p, event.channel, Consent(granted=event.granted, at=at, source=event.source, address=address))
    elif isinstance(event, CustomerIdentified):
        _stamp(p, "first_name", event.first_name, at)
        _stamp(p, "time_zone", event.time_zone, at)
        for name, value in sorted((event.dates or {}).items()):
            _offer_date(p, name, value, at)
    elif isinstance(event, CustomEvent) and event.name in watched(delays):
        offer_occurrence(p, event.name, Occurrence(event_id=event.event_id, at=at, properties=dict(event.properties)))
    set_triggers(p, delays)
    return p


def _ordered(p: Profile, event: OrderPlaced) -> None:
    at = event.occurred_at
    redeemed = issued_by(p.messages, event.coupon)
    came_from = event.nb or redeemed  # a link's message, or the code's
    _record_order(p, Order(order_id=event.order_id, at=at, total=event.total, decision_id=came_from, redeemed=redeemed))
    currency = p.cart.currency if p.cart else event.currency
    _offer_cart(p, Cart(items=[], currency=currency, updated_at=at))  # what the cart was for
    for item in event.items:
        _like(p, item.product_id, item.category, WEIGHTS["order"], at)
        if (held := p.interests.get(item.product_id)) is not None and held.at <= at.date():
            del p.interests[item.product_id]  # bought: no longer told it is back or cheaper


def verified(profile: Profile, event: EventDetail) -> bool:
    """The event names this profile's customer id: the shop vouches for every identifier it carries."""
    return profile.customer_id is not None and event.customer_id == profile.customer_id


def _take_contact(p: Profile, event: EventDetail) -> None:
    """The e-mail address and phone number an event may set: any on a verified event (the newest wins); on an
    anonymous profile, a claimed one linked to it when the field is empty (the earliest claim wins); on a known
    customer's profile, never a claim."""
    trusted = verified(p, event)
    _settle(p)
    if trusted:
        named = set(identity_keys(event.identifiers()))
        p.claimed = [k for k in p.claimed if k not in named]
    for field, value in (("email", event.email), ("phone", event.phone)):
        if value is None:
            continue
        if trusted or (p.customer_id is None and f"{CONTACTS[field][0]}:{value}" in p.identifiers):
            _offer_contact(p, field, value, event.occurred_at, trusted)


def _settle(p: Profile) -> Profile:
    """A known customer's profile holds no claimed address (one it held while anonymous is dropped)."""
    if p.customer_id is None:
        return p
    for field, (kind, _) in CONTACTS.items():
        value = getattr(p, field)
        if value is not None and f"{kind}:{value}" in p.claimed:
            setattr(p, field, None)
            p.stamps.pop(field, None)
            if field == "email":
                p.email_status, p.soft_bounces = "ok", 0
    return p


def _contact_rank(trusted: bool, at: datetime, value: str) -> tuple[int, float, str]:
    """Verified values beat claims; among verified values the newest wins, among claims the earliest."""
    return (1, at.timestamp(), value) if trusted else (0, -at.timestamp(), value)


def _outranks(trusted: bool, at: datetime, value: str, p: Profile, field: str) -> bool:
    """Whether this offer beats the value ``p`` holds in ``field`` (held with its stamp)."""
    return _contact_rank(trusted, at, value) > _contact_rank(
        _holds_trusted(p, field), p.stamps[field], getattr(p, field)
    )


def _holds_trusted(p: Profile, field: str) -> bool:
    value = getattr(p, field)
    return value is not None and f"{CONTACTS[field][0]}:{value}" not in p.claimed


def _offer_contact(p: Profile, field: str, value: str, at: datetime, trusted: bool) -> None:
    current, since = getattr(p, field), p.stamps.get(field)
    if current is not None and since is not None and not _outranks(trusted, at, value, p, field):
        return
    if value != current:
        _address_changed(p, field, current, at if trusted else None)
    setattr(p, field, value)
    p.stamps[field] = at


def _address_changed(p: Profile, field: str, old: str | None, at: datetime | None) -> None:
    """A new address: its bounce history starts afresh, and a grant made for the old one before the change (at
    ``at``, by a verified event) stays with the old one.

    A grant that names no address is bound when the change is applied; one that arrives after a change it predates
    cannot be told from one made after it, and covers the new address: producers whose consent events can arrive
    late should put the address on them.
    """
    if field == "email":
        p.email_status, p.soft_bounces = "ok", 0
    channel = CONTACTS[field][1]
    consent = p.consent.get(channel)
    if old is None or at is None or consent is None or consent.address is not None:
        return
    if consent.granted and consent.at < at:
        p.consent[channel] = consent.model_copy(update={"address": old})


def _stamp(p: Profile, field: str, value: str | None, at: datetime) -> None:
    """Set a descriptive field (first name, time zone) if this value is newer than the one held (ties: the
    greater value)."""
    if value is None:
        return
    current, since = getattr(p, field), p.stamps.get(field)
    if since is None or (at, value) > (since, current or ""):
        setattr(p, field, value)
        p.stamps[field] = at


def _offer_date(p: Profile, name: str, value: date, at: datetime) -> None:
    """A named date, if newer than the one held (ties: the later date); at most ``MAX_DATES`` names, the newest."""
    stamp = f"date.{name}"
    since, current = p.stamps.get(stamp), p.dates.get(name)
    if since is None or current is None or (at, value) > (since, current):
        p.dates[name] = value
        p.stamps[stamp] = at
    if len(p.dates) > MAX_DATES:
        keep = sorted(p.dates, key=lambda n: (p.stamps[f"date.{n}"], n))[-MAX_DATES:]
        for dropped in set(p.dates) - set(keep):
            del p.dates[dropped]
            p.stamps.pop(f"date.{dropped}", None)


def offer_occurrence(p: Profile, name: str, occurrence: Occurrence) -> None:
    """The latest occurrence of each name wins (then the greater event id, so merges agree); the newest
    ``MAX_OCCURRENCES`` names are kept."""
    held = p.occurrences.get(name)
    if held is None or occurrence.rank() > held.rank():
        p.occurrences[name] = occurrence
    if len(p.occurrences) > MAX_OCCURRENCES:
        newest = sorted(p.occurrences.items(), key=lambda kv: (kv[1].rank(), kv[0]))[-MAX_OCCURRENCES:]
        p.occurrences = dict(sorted(newest))


def watched(delays: Mapping[str, timedelta]) -> set[str]:
    """The custom event names some approved campaign triggers on: the only ones a profile remembers."""
    return {spec.name for key in delays if (spec := EventSpec.parse(key)) is not None}


def next_date(p: Profile, spec: DateSpec, after: datetime, default_zone: str) -> datetime | None:
    """When the date trigger ``spec`` is next due for this customer after ``after`` (None: no such date, or a
    one-off already past), at its local time in the customer's zone."""
    value = p.dates.get(spec.attribute)
    if value is None:
        return None
    return spec.next_due(value, zone_of(p.time_zone, default_zone), after)


def _offer_cart(p: Profile, cart: Cart) -> None:
    if p.cart is None or cart.rank() > p.cart.rank():
        p.cart = cart


def _wishlisted(p: Profile, event: WishlistUpdated, delays: Mapping[str, timedelta]) -> None:
    """Take the wishlist if it is the newest: a product added to it is liked, each on it is an interest (recorded
    while a campaign answers wishlists or views, renewed like any), and one taken off it is no longer, unless the
    customer put it in the cart (a cart's interest outlives the cart, a wishlist's does not: removing it says no)."""
    at, held = event.occurred_at, p.wishlist
    items = {item.product_id: item for item in event.items}
    wishlist = Wishlist(items=list(items), updated_at=at)
    if held is not None and wishlist.rank() <= held.rank():
        return  # older than the list held, or the same list again
    p.wishlist = wishlist
    before = set(held.items) if held is not None else set()
    for product_id, item in items.items():
        if product_id not in before:
            _like(p, product_id, item.category, WEIGHTS["wishlist"], at)
        _interested(p, product_id, "wishlist", at, delays)
    for product_id in sorted(before - set(items)):
        if (interest := p.interests.get(product_id)) is not None and interest.kind == "wishlist":
            del p.interests[product_id]


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


def _interested(p: Profile, product_id: str, kind: Interest, at: datetime, delays: Mapping[str, timedelta]) -> None:
    """Record the customer's interest in a product if an approved catalog campaign needs it (``TriggerDelays.watch``:
    a view counts only when one answers viewers, the wishlist when one answers it or viewers) and it is not recorded
    already, as strong and recent: a view or a cart repeated within ``INTEREST_REFRESH`` changes nothing (and costs no
    write of the interest index). Interests that have lapsed are forgotten on the way."""
    watch = delays.watch if isinstance(delays, TriggerDelays) else None
    if watch is None or not watch.records(kind):
        return
    lapsed = (at - INTEREST_TTL).date()
    p.interests = {k: v for k, v in p.interests.items() if v.at > lapsed}
    _offer_interest(p, product_id, ProductInterest(kind=kind, at=at.date()))
    p.interests = _bounded_interests(p.interests)


def _offer_interest(p: Profile, product_id: str, offered: ProductInterest) -> None:
    """Keep the stronger kind and the later day; a day less than ``INTEREST_REFRESH`` after the one held is not
    taken (the index entry recorded then still stands), unless the kind gets stronger."""
    held = p.interests.get(product_id)
    if held is None:
        p.interests[product_id] = offered
        return
    kind = max(held.kind, offered.kind, key=strength)
    later = max(held.at, offered.at)
    if kind != held.kind or later - held.at >= INTEREST_REFRESH:
        p.interests[product_id] = ProductInterest(kind=kind, at=later)


def _joined(a: ProductInterest | None, b: ProductInterest | None) -> ProductInterest:
    """One person's interest in a product from two profiles: the stronger kind, the later day (symmetric)."""
    both = [i for i in (a, b) if i is not None]
    return ProductInterest(kind=max((i.kind for i in both), key=strength), at=max(i.at for i in both))


def _bounded_interests(interests: dict[str, ProductInterest]) -> dict[str, ProductInterest]:
    if len(interests) <= MAX_INTERESTS:
        return interests
    return dict(sorted(interests.items(), key=lambda kv: (kv[1].rank(), kv[0]))[-MAX_INTERESTS:])


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
    * post_purchase: the last order;
    * lapse: the last order, unless checked since (decide then set the next check);
    * ``event:<name>+<m>m``: the latest custom event of that name (``nextbest.core.triggers``);
    * ``catalog:<kind>+<m>m``: the latest change of that kind to a product the customer is interested in;
    * ``date:…``: the next occurrence of the customer's date, after the one last decided and no more than
      ``DATE_GRACE`` before the newest event (so an event written just after the due time does not skip it).

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
        LAPSE: p.last_order_at,
    }
    zone = delays.time_zone if isinstance(delays, TriggerDelays) else "UTC"
    for name in delays:
        named = EventSpec.parse(name) or CatalogSpec.parse(name)
        if named is not None:
            occurrence = p.occurrences.get(named.name if isinstance(named, EventSpec) else named.occurrence)
            clocks[name] = occurrence.at if occurrence else None
    for name, started in clocks.items():
        delay = delays.get(name)
        due = started + delay if started is not None and delay is not None else None
        if name == LAPSE and due is not None and name in p.handled and p.handled[name] >= due:
            continue  # checked since the last order: the next check is the one decide set
        if due is None or p.handled.get(name) == due:
            p.triggers.pop(name, None)
        else:
            p.triggers[name] = due
    for name in delays:
        if (spec := DateSpec.parse(name)) is not None:
            floors = [t for t in (p.handled.get(name), p.last_event_at and p.last_event_at - DATE_GRACE) if t]
            due = next_date(p, spec, max(floors), zone) if floors else None
            if due is None:
                p.triggers.pop(name, None)
            else:
                p.triggers[name] = due


def settle(profile: Profile, now: datetime, delays: TriggerDelays) -> Profile:
    """The profile as imported history leaves it (``nextbest.ingest.history``): no trigger that is already due stays
    armed (it is marked handled at its due time, so the same history replayed does not raise it again). A buyer's
    lapse check, if due, moves to a moment within one lapse interval after ``now`` that depends only on the profile:
    a million imported buyers are checked over the following week, not all in its first minute. A date's trigger moves
    to the date's next occurrence after ``now`` (history's events are old: without this, a yearly date would wait for
    the customer's next event to be armed again)."""
    p = profile.model_copy(deep=True)
    zone = delays.time_zone if isinstance(delays, TriggerDelays) else "UTC"
    for name, due in list(p.triggers.items()):
        if due > now:
            continue
        p.handled[name] = due
        p.triggers.pop(name)
        if name == LAPSE and (every := delays.get(LAPSE)) is not None:
            share = int(hashlib.sha256(p.key.encode()).hexdigest()[:8], 16) / 2**32
            p.triggers[LAPSE] = now + timedelta(minutes=1) + every * share
        elif (spec := DateSpec.parse(name)) is not None and (upcoming := next_date(p, spec, now, zone)) is not None:
            p.triggers[name] = upcoming
    return p


def merge(a: Profile, b: Profile, delays: TriggerDelays) -> Profile:
    """One profile of one person from two; symmetric, so arrival order cannot change the result.

    The newest statement of consent wins and an opt-out wins ties: an opt-out on either side beats every
    grant made before it, while a re-subscription made after it is honoured. Orders are counted once.
    """
    keys = sorted(set(a.identifiers) | set(b.identifiers) | {a.key, b.key})
    m = Profile(key=canonical_key(keys), identifiers=bound_identifiers(keys))
    _merge_person(m, a, b)
    for side in (a, b):
        if side.cart is not None:
            _offer_cart(m, side.cart)
        if side.wishlist is not None and (m.wishlist is None or side.wishlist.rank() > m.wishlist.rank()):
            m.wishlist = side.wishlist
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
    for side in (a, b):
        for name, value in side.dates.items():
            _offer_date(m, name, value, side.stamps.get(f"date.{name}", AFFINITY_EPOCH))
        for name, occurrence in side.occurrences.items():
            offer_occurrence(m, name, occurrence)
    m.interests = _bounded_interests(
        {k: _joined(a.interests.get(k), b.interests.get(k)) for k in sorted(set(a.interests) | set(b.interests))}
    )
    for name in sorted(set(a.handled) | set(b.handled)):
        m.handled[name] = max(t for t in (a.handled.get(name), b.handled.get(name)) if t)
    for name in sorted(set(a.triggers) | set(b.triggers)):
        m.triggers[name] = min(t for t in (a.triggers.get(name), b.triggers.get(name)) if t)
    m.last_event_at = max(filter(None, [a.last_event_at, b.last_event_at]), default=None)
    set_triggers(m, delays)
    m.messages = sorted(
        {x.decision_id: x for x in [*a.messages, *b.messages]}.values(), key=lambda x: (x.at, x.decision_id)
    )[-MAX_MESSAGES:]
    m.undeliverable = bound_identifiers(set(a.undeliverable) | set(b.undeliverable))
    return m


def _merge_person(m: Profile, a: Profile, b: Profile) -> None:
    """Who the merged person is and how to reach them: claims (a key either side holds as proven is proven),
    name and time zone (newest), addresses (``_merge_contact``), the address's bounce status, consent."""
    trusted = {k for side in (a, b) for k in {side.key, *side.identifiers} - set(side.claimed)}
    m.claimed = sorted((set(a.claimed) | set(b.claimed)) & set(m.identifiers) - trusted)
    for field in ("first_name", "time_zone"):
        for side in (a, b):
            value, since = getattr(side, field), side.stamps.get(field)
            if value is not None and since is not None:
                _stamp(m, field, value, since)
    for field in CONTACTS:
        _merge_contact(m, field, a, b)
    statuses = [s.email_status for s in (a, b) if s.email == m.email]
    m.email_status = max(statuses, key=STATUS_RANK.__getitem__) if statuses else "ok"
    for side in (a, b):
        for channel, consent in side.consent.items():
            offer_consent(m, channel, _bound(consent, channel, side, m))


def _merge_contact(m: Profile, field: str, *sides: Profile) -> None:
    """The merged address: as ``_contact_rank`` orders them; a known customer's profile takes no claim."""
    offers = []
    for side in sides:
        value, since = getattr(side, field), side.stamps.get(field)
        if value is not None and since is not None and (_holds_trusted(side, field) or m.customer_id is None):
            offers.append((_holds_trusted(side, field), since, value))
    if offers:
        _, since, value = max(offers, key=lambda offer: _contact_rank(*offer))
        setattr(m, field, value)
        m.stamps[field] = since


def _bound(consent: Consent, channel: Channel, side: Profile, merged: Profile) -> Consent:
    """A grant made for "the address held" on one side stays with that side's address if the merged profile keeps
    a verified one set after the grant: what ``_address_changed`` does when the change comes as an event."""
    if consent.address is not None or channel == "push" or not consent.granted:
        return consent
    field = "email" if channel == "email" else "phone"
    held, kept, since = getattr(side, field), getattr(merged, field), merged.stamps.get(field)
    if held is not None and kept not in (None, held) and _holds_trusted(merged, field) and since and consent.at < since:
        return consent.model_copy(update={"address": held})
    return consent


@dataclass(frozen=True)
class Links:
    """What one event joins: the profiles its identifiers lead to, merged into one, and the identifiers seen for
    the first time, attached to it. ``left_out`` lead to another customer's profile and stay there."""

    profiles: list[Profile]
    new_keys: list[str]
    left_out: list[str]


def links(keys: list[str], found: Mapping[str, Profile | None], customer_id: str | None) -> Links:
    """Which of an event's identifiers may be joined: all of them, unless they lead to two customers.

    Two customer ids are never merged: such an event joins the customer its ``customer_id`` names (or, without
    one, the customer its strongest identifier leads to: e-mail, then phone, device token, cookie), and the
    identifiers that lead to another customer are left out. The event is applied, not rejected: a browser shared
    by two account holders is ordinary, and holding their events back would hold their opt-outs back too.
    """
    owner = customer_id
    for key in sorted(keys, key=_rank_of_key):
        profile = found[key]
        if owner is None and profile is not None:
            owner = profile.customer_id
    joined: dict[str, Profile] = {}
    new_keys, left_out = [], []
    for key in sorted(keys, key=_rank_of_key):
        profile = found[key]
        if profile is None:
            new_keys.append(key)
        elif profile.customer_id is not None and profile.customer_id != owner:
            left_out.append(key)
        else:
            joined.setdefault(profile.key, profile)
    return Links(list(joined.values()), new_keys, left_out)


def _rank_of_key(key: str) -> tuple[int, str]:
    return (KIND_RANK[key[0]], key)


def join(links: Links, customer_id: str | None, delays: TriggerDelays) -> Profile:
    """The profile an event is applied to: its profiles merged, its new identifiers attached. New identifiers
    are claims unless the event is verified for the result (it names the result's customer id)."""
    if links.profiles:
        target = reduce(lambda a, b: merge(a, b, delays), sorted(links.profiles, key=lambda p: p.key))
        if len(links.profiles) == 1:
            target = target.model_copy(update={"version": links.profiles[0].version})
        if links.new_keys:
            everything = set(target.identifiers) | set(links.new_keys)
            target = target.model_copy(
                update={"identifiers": bound_identifiers(everything), "key": canonical_key(everything)}
            )
    else:
        target = new_profile(links.new_keys)
    if links.new_keys and not (customer_id is not None and target.customer_id == customer_id):
        target.claimed = sorted({*target.claimed, *links.new_keys} & set(target.identifiers))
    return target


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
