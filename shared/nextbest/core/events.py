"""The event contract: what producers put on the bus.

Each ``detail-type`` has one pydantic model; the JSON Schemas in ``shared/schemas`` are generated from
these models (``nextbest schemas``) and a test fails when they are stale. Models forbid unknown fields so
a producer's typo is a clear rejection instead of silently lost data.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

MAX_FUTURE_SKEW = timedelta(minutes=15)
"""Producers' clocks drift; an event further in the future than this is a bug, not a prediction."""

Channel = Literal["email", "sms", "push"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@+\-]+$")]
_NOT_IN_ADDRESS = r"@\s\x00-\x1f\x7f-\x9f\u2028\u2029"
EMAIL_PATTERN = rf"^[^{_NOT_IN_ADDRESS}]+@[^{_NOT_IN_ADDRESS}]+\.[^{_NOT_IN_ADDRESS}]+$"
"""No whitespace or control character anywhere: Python's e-mail headers treat \\x1c-\\x1f, \\x85 and the Unicode
line separators as line breaks, so such an address could never be sent to (or would split a header)."""
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=EMAIL_PATTERN),
]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
DeviceToken = Annotated[str, StringConstraints(min_length=8, max_length=512, pattern=r"^[A-Za-z0-9_:.\-]+$")]
"""An APNs/FCM token as the app registered it (the push channel's address)."""
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
EventName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=EVENT_NAME_PATTERN)]
"""A custom event's name: lower-case words joined by dots or underscores (``subscription.renewed``)."""
PropertyName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PropertyValue = (
    Annotated[str, StringConstraints(max_length=256, strict=True)]
    | StrictBool
    | StrictInt
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | None
)
"""Flat on purpose: predicates compare scalars, and a nested object could hide any amount of data."""
MAX_PROPERTIES = 20
MAX_PROPERTIES_BYTES = 1024
DateName = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
MAX_DATES = 10
_TZ = re.compile(r"^[A-Za-z_]+(/[A-Za-z0-9_\-+]+)*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identifiers(_Model):
    """Any subset of a person's identifiers, at least one; an event's identifiers are linked to one profile.

    ``customer_id`` is the only one nextbest trusts as proof of who someone is (``nextbest.core.profiles``): an
    event that carries it may set that customer's e-mail address, phone number and push tokens; the others are
    claims, which never change a known customer's contact details.
    """

    customer_id: Id | None = Field(
        default=None,
        description="The shop's account id. Put it on an event only when the shop knows the customer is signed in "
        "(or in its own back office): it is the proof nextbest trusts, the only one that may change a customer's "
        "e-mail address, phone number or push tokens.",
    )
    anonymous_id: Id | None = Field(default=None, description="A cookie or app installation id (a claim).")
    email: Email | None = Field(
        default=None,
        description="A claim, unless the event carries the customer_id: then it is the customer's address.",
    )
    phone: E164 | None = Field(
        default=None,
        description="A claim, unless the event carries the customer_id: then it is the customer's number.",
    )
    device_token: DeviceToken | None = Field(
        default=None,
        description="A claim, unless the event carries the customer_id: then pushes to the customer may use it.",
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> Identifiers:
        if not (self.customer_id or self.anonymous_id or self.email or self.phone or self.device_token):
            raise ValueError(
                "an event needs at least one identifier: customer_id, anonymous_id, email, phone or device_token"
            )
        return self


class EventDetail(Identifiers):
    event_id: Id = Field(description="Chosen by the producer; a repeated event_id is processed once.")
    occurred_at: AwareDatetime = Field(description="When it happened, ISO 8601 with offset (UTC preferred).")

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:30+01:00 is before the first UTC instant datetime can hold
            raise ValueError("occurred_at is outside the range of dates in UTC") from None

    def identifiers(self) -> Identifiers:
        return Identifiers(
            customer_id=self.customer_id,
            anonymous_id=self.anonymous_id,
            email=self.email,
            phone=self.phone,
            device_token=self.device_token,
        )


class LineItem(_Model):
    product_id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    quantity: Annotated[int, Field(ge=1, le=999)]
    unit_price: Money
    category: Annotated[str, StringConstraints(max_length=100)] | None = None


class ProductViewed(EventDetail):
    product_id: Id
    category: Annotated[str, StringConstraints(max_length=100)] | None = None
    price: Money | None = None


class CartUpdated(EventDetail):
    """The whole cart after the change (a snapshot, so late or repeated events cannot corrupt it)."""

    items: Annotated[list[LineItem], Field(max_length=100)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"


class WishlistItem(_Model):
    product_id: Id
    category: Annotated[str, StringConstraints(max_length=100)] | None = None


class WishlistUpdated(EventDetail):
    """The whole wishlist after the change, like a cart: a snapshot, so a late or repeated event cannot put back a
    product the customer removed, and a lost one is made good by the next. A shop's platform keeps the list whole
    (Salesforce B2C Commerce returns a customer product list with its items), so sending all of it costs the shop
    nothing more than sending what was added or removed, which a change delivered out of order would corrupt."""

    items: Annotated[list[WishlistItem], Field(max_length=100)]


class OrderPlaced(EventDetail):
    order_id: Id
    items: Annotated[list[LineItem], Field(min_length=1, max_length=100)]
    total: Money
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    nb: Id | None = Field(
        default=None,
        description="The decision id of the message the customer arrived from: the `nb` parameter of the landing "
        "URL, kept by the shop until checkout. The order is credited to that message (``nextbest.core.attribution``).",
    )
    coupon: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="The coupon code the customer redeemed, if any: the order is credited to the message that carried "
        "it, like ``nb`` (``nextbest.core.coupons``).",
    )


class CustomerIdentified(EventDetail):
    """Every identifier in the event belongs to one person: their profiles are merged."""

    first_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    dates: Annotated[dict[DateName, date], Field(max_length=MAX_DATES)] | None = Field(
        default=None,
        description="The customer's dates by name, YYYY-MM-DD (birthday, signed_up, contract_ends…): what date "
        "triggers fire on. Each replaces the date of that name (the newest event wins); names not given are kept.",
    )

    @field_validator("time_zone")
    @classmethod
    def _iana(cls, value: str | None) -> str | None:
        if value is not None and not _TZ.match(value):
            raise ValueError("time_zone must be an IANA name such as Europe/Paris")
        return value


class CustomEvent(EventDetail):
    """Anything else the shop wants campaigns to answer (``subscription.renewed``, ``review.posted``): a name and
    a flat object of properties. Properties are bounded (``MAX_PROPERTIES`` keys, ``MAX_PROPERTIES_BYTES`` of
    JSON), because the profile remembers the latest occurrence of each name a campaign triggers on."""

    name: EventName = Field(description="Lower-case words joined by dots or underscores: subscription.renewed.")
    properties: Annotated[dict[PropertyName, PropertyValue], Field(max_length=MAX_PROPERTIES)] = Field(
        default_factory=dict,
        description="A flat JSON object: strings (up to 256 characters), numbers, true/false or null; no nesting.",
    )

    @field_validator("properties")
    @classmethod
    def _small(cls, value: dict[str, object]) -> dict[str, object]:
        if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties take more than {MAX_PROPERTIES_BYTES} bytes of JSON")
        return value


class ConsentUpdated(EventDetail):
    """A statement of consent. A grant covers the address it names (``email`` for the e-mail channel, ``phone`` for
    SMS), or without one the address the profile holds when it is applied; an opt-out covers the channel."""

    channel: Channel
    granted: bool
    source: Annotated[str, StringConstraints(max_length=64)] = "preference_center"


class CustomerErased(EventDetail):
    """Right to erasure: forget this person everywhere, and do not learn them again unless they consent."""

    reason: Annotated[str, StringConstraints(max_length=64)] = "gdpr_request"


Availability = Literal["in_stock", "out_of_stock", "removed"]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s<>\"']+$")]
"""An absolute http(s) URL with nothing that could break out of an HTML attribute or a text message."""


class ProductUpdated(_Model):
    """A product as the shop sells it now (a snapshot: the newest ``occurred_at`` wins, so late or repeated events
    cannot roll it back). It names no customer: ingest stores it in the catalog (``nextbest.core.catalog``). A
    removal may carry the id alone; any other state needs the name, URL and price a message shows."""

    event_id: Id = Field(description="Chosen by the producer; a repeated event_id is processed once.")
    occurred_at: AwareDatetime = Field(description="When the product was in this state, ISO 8601 with offset.")
    product_id: Id
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    url: Url | None = Field(default=None, description="The product's page in the shop.")
    image_url: Url | None = None
    price: Money | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    category: Annotated[str, StringConstraints(max_length=100)] | None = None
    category_url: Url | None = Field(
        default=None,
        description="The page of the product's category in the shop, where a message naming the category links.",
    )
    availability: Availability = "in_stock"

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return EventDetail._to_utc(value)

    @model_validator(mode="after")
    def _sellable(self) -> ProductUpdated:
        missing = [f for f in ("name", "url", "price") if getattr(self, f) is None]
        if self.availability != "removed" and missing:
            raise ValueError(f"a product {self.availability} needs {', '.join(missing)} (only a removal may omit them)")
        return self


DETAIL_TYPES: dict[str, type[EventDetail] | type[ProductUpdated]] = {
    "product.viewed": ProductViewed,
    "cart.updated": CartUpdated,
    "wishlist.updated": WishlistUpdated,
    "order.placed": OrderPlaced,
    "customer.identified": CustomerIdentified,
    "consent.updated": ConsentUpdated,
    "customer.erased": CustomerErased,
    "custom.event": CustomEvent,
    "product.updated": ProductUpdated,
}

MAX_EVENT_BYTES = 64 * 1024
"""A bigger detail than this is a producer bug (EventBridge itself caps an entry at 256 KB)."""


class BusEvent(BaseModel):
    """The EventBridge envelope as SQS receives it; only the fields nextbest relies on."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    time: datetime
    detail: dict[str, Any]


class RejectedEvent(Exception):
    """An event that can never succeed: it goes to the dead-letter queue with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def parse_event(body: str, now: datetime) -> tuple[str, EventDetail | ProductUpdated]:
    """Validate one SQS body holding an EventBridge event; raise RejectedEvent with a machine reason."""
    from pydantic import ValidationError

    if len(body.encode()) > MAX_EVENT_BYTES + 4096:
        raise RejectedEvent("oversized", f"event is larger than {MAX_EVENT_BYTES} bytes")
    try:
        envelope = BusEvent.model_validate_json(body)
    except ValidationError as error:
        reason = "bad_json" if any(e["type"] == "json_invalid" for e in error.errors()) else "bad_envelope"
        raise RejectedEvent(reason, _summary(error)) from None
    model = DETAIL_TYPES.get(envelope.detail_type)
    if model is None:
        raise RejectedEvent("unknown_detail_type", f"detail-type {envelope.detail_type!r} is not supported")
    try:
        detail = model.model_validate(envelope.detail)
    except ValidationError as error:
        missing_ids = any("at least one identifier" in e["msg"] for e in error.errors())
        raise RejectedEvent("missing_identifiers" if missing_ids else "invalid_detail", _summary(error)) from None
    if detail.occurred_at > now + MAX_FUTURE_SKEW:
        raise RejectedEvent("future_timestamp", "occurred_at is too far in the future")
    return envelope.detail_type, detail


def _summary(error: Any) -> str:
    """Field paths and messages only: never the input values, which may be personal data, nor the name of a field
    the contract does not have (a producer may key a map by an e-mail address)."""
    parts = [f"{_path(e) or '<root>'}: {e['msg']}" for e in error.errors(include_input=False)[:5]]
    return "; ".join(parts)[:500]


KEYED_BY_PRODUCER = ("properties", "dates")
"""Maps whose keys the producer names: an error names the map, never the key."""


def _path(e: Any) -> str:
    loc = [str(p) for p in e["loc"]]
    if e["type"] == "extra_forbidden" and loc:
        loc[-1] = "<unexpected field>"
    if len(loc) > 1 and loc[0] in KEYED_BY_PRODUCER:
        loc[1] = "<name>"
    return ".".join(loc)
