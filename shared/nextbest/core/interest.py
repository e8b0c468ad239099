"""Back in stock and price drop: from a change in the catalog to the customers who care.

A customer shows interest in a product by viewing it, putting it on their wishlist or putting it in the cart
(``profiles.Profile.interests``, the strongest of them, recorded only while an approved campaign answers catalog
changes; a view only if one answers viewers, the wishlist only if one answers it or viewers). Each new
interest, and each one shown again ``INTEREST_REFRESH`` after it was recorded, is written to the *interest index*:
one small item per product and customer, ``int:<product id>#<shard>`` / ``<profile key>``, which expires
``INTEREST_TTL`` after it was recorded. The shard is a hash of the profile key (``INTEREST_SHARDS`` of them), so a
product thousands of customers look at in the same second spreads its writes over as many partitions, each of
which takes 1,000 write units a second.

When a ``product.updated`` stores a new state of a product, ingest compares it with the state it replaced
(:func:`catalog_change`): out of stock then in stock is *back in stock*; in stock at a lower price, by at least the
smallest drop a campaign answers, is a *price drop*. Ingest then queues a :class:`FanOut` per shard of the index;
each reads its shard a page at a time (a page is far below DynamoDB's 1 MB), queues a :class:`Noticed` per
customer found (``SendMessageBatch``, ten a request) and, if the shard holds more, a :class:`FanOut` for the next
page, so no invocation does more than a page however many customers care. A ``Noticed`` is applied to the profile
like a custom event (:func:`notice`: remembered as the occurrence ``catalog:<kind>``, the trigger armed), with an
event id derived from the product's state and the profile key: the same change redelivered, or fanned out again, is
applied once. Decide then answers it like any trigger, with every guardrail, and sends nothing if the product is
out of stock again, removed, or dearer than the drop said by then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from nextbest.core.catalog import Product, State
from nextbest.core.events import Id
from nextbest.core.profiles import (
    INTEREST_TTL,
    Occurrence,
    ProductInterest,
    Profile,
    TriggerDelays,
    offer_occurrence,
    set_triggers,
)
from nextbest.core.triggers import CatalogKind, CatalogSpec, Interest, Watch

INTEREST_SHARDS = 16
"""Partitions of each product's interest index: 16,000 new interests a second in one product before DynamoDB has to
split a partition, and a fan-out of 16 shards read side by side."""
FAN_OUT_PAGE = 500
"""Customers one :class:`FanOut` reads and queues: one Query (about 30 KB) and 50 ``SendMessageBatch`` requests,
about a second of an invocation; a shard with more continues in the next message."""


def interest_shard(profile_key: str) -> int:
    return int(hashlib.sha256(profile_key.encode()).hexdigest()[:8], 16) % INTEREST_SHARDS


def expiry(interest: ProductInterest) -> datetime:
    """When an interest recorded on ``interest.at`` lapses: ``INTEREST_TTL`` after the end of that day (UTC)."""
    return datetime.combine(interest.at + timedelta(days=1), time(0), tzinfo=UTC) + INTEREST_TTL


@dataclass(frozen=True)
class IndexEntry:
    """An item of the interest index: this profile is interested in this product until ``expires_at``."""

    product_id: str
    profile_key: str
    expires_at: datetime

    @property
    def shard(self) -> int:
        return interest_shard(self.profile_key)


@dataclass(frozen=True)
class InterestPage:
    """A page of one shard of a product's interest index: the profile keys, and where the next page starts (None:
    the shard is done)."""

    profile_keys: list[str]
    after: str | None


@dataclass(frozen=True)
class IndexWrites:
    """What a profile's write changes in the interest index."""

    put: list[IndexEntry]
    """Each interest the profile records anew (or again, or stronger), under the key it is saved at."""
    delete: list[tuple[str, str]]
    """(product id, profile key) of each interest it no longer holds before its time: bought, or pushed out by
    newer ones (``MAX_INTERESTS``); a lapsed one has expired already."""

    def __bool__(self) -> bool:
        return bool(self.put or self.delete)


def index_writes(before: Profile | None, after: Profile, now: datetime) -> IndexWrites:
    """The index writes a profile's write must be preceded by. Made before the profile's, so a crash in between
    leaves an entry whose profile write is retried (the event is redelivered), never a profile that believes in a
    missing entry; and the profile lists every entry the index holds for it, which erasure deletes."""
    held = before.interests if before is not None else {}
    return IndexWrites(
        put=[
            IndexEntry(product_id, after.key, expiry(interest))
            for product_id, interest in sorted(after.interests.items())
            if held.get(product_id) != interest
        ],
        delete=[
            (product_id, after.key)
            for product_id, interest in sorted(held.items())
            if product_id not in after.interests and expiry(interest) > now
        ],
    )


class CatalogChange(BaseModel):
    """A change of a product that catalog campaigns answer: what each interested customer's event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: CatalogKind
    product_id: Id
    version: str = Field(description="The product's new state (``Product.version``): names this change.")
    at: AwareDatetime = Field(description="When the product changed: the clock of the customers' triggers.")
    category: str | None = None
    currency: str = "USD"
    old_price: Decimal | None = None
    new_price: Decimal | None = None

    @property
    def drop_percent(self) -> Decimal:
        """How much cheaper it is, in percent of the old price, rounded down to a tenth (0 if not cheaper): a drop
        shown as 10.0 is at least 10%, so ingest's threshold and a campaign's agree on what they read."""
        old, new = self.old_price, self.new_price
        if old is None or new is None or old <= 0 or new >= old:
            return Decimal(0)
        return ((old - new) * 100 / old).quantize(Decimal("0.1"), rounding=ROUND_DOWN)

    def properties(self, interest: Interest) -> dict[str, str | float | None]:
        """What a campaign's ``where`` conditions and its templates (``event``) read: numbers as numbers."""
        return {
            "product_id": self.product_id,
            "category": self.category,
            "currency": self.currency,
            "old_price": float(self.old_price) if self.old_price is not None else None,
            "new_price": float(self.new_price) if self.new_price is not None else None,
            "drop_percent": float(self.drop_percent),
            "interest": interest,
        }

    def event_id(self, profile_key: str) -> str:
        """The same for every fan-out of this change to this profile key, so the profile applies it once."""
        name = f"{self.kind}|{self.product_id}|{self.version}|{profile_key}"
        return "catalog-" + hashlib.blake2b(name.encode(), digest_size=12).hexdigest()


def catalog_change(previous: State | None, product: Product, watch: Watch) -> CatalogChange | None:
    """What the product's new state changed that an approved campaign answers (``watch``), or None.

    Back in stock: it was out of stock and is in stock now (whatever its price; the drop, if any, comes with it).
    Price drop: it was in stock and still is, in the same currency, at least ``watch.min_drop_percent`` cheaper.
    A product's first state, a removal and a product sold out change nothing anybody is told about."""
    if previous is None or product.availability != "in_stock":
        return None
    same_currency = previous.currency == product.currency
    change = CatalogChange(
        kind="back_in_stock",
        product_id=product.product_id,
        version=product.version,
        at=product.updated_at,
        category=product.category,
        currency=product.currency,
        old_price=previous.price if same_currency else None,
        new_price=product.price,
    )
    if previous.availability == "out_of_stock":
        return change if watch.back_in_stock else None
    if previous.availability == "in_stock" and watch.min_drop_percent is not None:
        dropped = change.drop_percent > 0 and change.drop_percent >= watch.min_drop_percent
        return change.model_copy(update={"kind": "price_drop"}) if dropped else None
    return None


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FanOut(_Command):
    """Queue a :class:`Noticed` for each customer of one shard of the changed product's interest index, a page at a
    time, starting after the profile key ``after``."""

    fan_out: CatalogChange
    shard: int = Field(ge=0, lt=INTEREST_SHARDS)
    after: str | None = None


class Noticed(_Command):
    """A product this profile's customer is interested in changed: apply it to the profile (:func:`notice`)."""

    noticed: CatalogChange
    profile_key: str

    @property
    def event_id(self) -> str:
        return self.noticed.event_id(self.profile_key)


IngestCommand = FanOut | Noticed
"""What ingest sends itself on its events queue. Neither is an EventBridge envelope (the shop's events are, and a
producer can put nothing else there), they forbid extra fields and their required fields differ, so a body is one
of them, or a shop's event, never two."""
ingest_command: TypeAdapter[FanOut | Noticed] = TypeAdapter(IngestCommand)


def fan_out(change: CatalogChange) -> list[FanOut]:
    """The first page of every shard of the changed product's interest index."""
    return [FanOut(fan_out=change, shard=shard) for shard in range(INTEREST_SHARDS)]


def notice(profile: Profile, command: Noticed, delays: TriggerDelays) -> Profile | None:
    """The profile with the change remembered and its trigger armed, or None if nothing is to be done: the
    customer's interest lapsed or went (an order of the product ends it), or no approved campaign answers this kind
    of change any more."""
    change = command.noticed
    interest = profile.interests.get(change.product_id)
    watched = any((spec := CatalogSpec.parse(key)) is not None and spec.kind == change.kind for key in delays)
    if interest is None or change.at >= expiry(interest) or not watched:
        return None
    p = profile.model_copy(deep=True)
    occurrence = Occurrence(event_id=command.event_id, at=change.at, properties=change.properties(interest.kind))
    offer_occurrence(p, CatalogSpec(change.kind, timedelta(0)).occurrence, occurrence)
    set_triggers(p, delays)
    return p
