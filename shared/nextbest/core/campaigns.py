"""Campaigns and the house rules, as code: reviewed TOML files validated at synth time, in tests and at cold start.

The approval gate lives here. A campaign whose status is ``approved`` must name its approver and carry the
digest of what was approved (``nextbest campaigns approve FILE --by NAME`` writes both). If the creative,
offer or channels change afterwards, the digest no longer matches and the campaign loads as a draft: it
never sends until someone approves it again. Decide never considers any status but ``approved``.

``policy.toml`` holds what spans campaigns: frequency caps, quiet hours, the global control group, the
conflict window, the cost of fatigue.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from nextbest.core.coupons import CouponKind, default_prefix
from nextbest.core.events import DETAIL_TYPES, Channel, DateName, EventName, PropertyName
from nextbest.core.profiles import LAPSE, TriggerDelays
from nextbest.core.triggers import (
    INTERESTS,
    CatalogKind,
    CatalogSpec,
    DateSpec,
    EventSpec,
    Interest,
    Watch,
    number,
    same,
    strength,
)

TriggerKind = Literal[
    "cart_abandoned", "browse_abandoned", "replenishment", "post_purchase", "at_risk", "win_back", "follow_up"
]
SWEPT: frozenset[str] = frozenset({"at_risk", "win_back"})
"""Trigger kinds no event sets: a buyer's lapse check (``profiles.LAPSE``) finds these customers."""
LAPSE_CHECK_EVERY = timedelta(days=7)
"""A buyer is checked for lapsing a week after each order, then every week while no order comes."""
FOLLOW_UP = "follow_up."
"""Prefix of the trigger that follows an ignored message of a campaign: ``follow_up.<campaign id>``."""
Fulfilment = Literal["any", "online_only", "in_store_only"]


class CampaignError(ValueError):
    """A campaign file that must not ship; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    kind: Literal["cart_abandoned", "browse_abandoned", "replenishment", "post_purchase", "at_risk", "win_back"]
    delay_minutes: Annotated[int, Field(ge=0, le=60 * 24 * 30)] = Field(
        default=60, description="After the event that starts the clock (cart change, last view, order)."
    )
    lead_days: Annotated[int, Field(ge=0, le=60)] = Field(
        default=3, description="replenishment: this many days before the customer's own next-purchase date."
    )
    lapsed_days: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=120, description="win_back: no order for at least this long."
    )

    @property
    def delay(self) -> timedelta:
        """When ingest's alarm rings, relative to the trigger's clock (negative: ahead of it)."""
        if self.kind == "replenishment":
            return -timedelta(days=self.lead_days)
        return timedelta(minutes=self.delay_minutes)

    @property
    def key(self) -> str:
        """The trigger's name on a profile: a buyer's lapse check for at-risk and win-back, else the kind."""
        return LAPSE if self.kind in SWEPT else self.kind


Number = Annotated[float, Strict()]
"""A number in the file, never a string that looks like one (``gte = "100"`` is refused, not read as 100)."""
Scalar = Annotated[str, StringConstraints(max_length=256, strict=True)] | StrictBool | StrictInt | Number
OPERATORS = ("equals", "in", "gt", "gte", "lt", "lte", "exists")


class Where(_Model):
    """One condition on a property of the event: exactly one of ``equals``, ``in``, ``gt``, ``gte``, ``lt``, ``lte``
    (numbers only: a string never compares) or ``exists``. Equality is strict: ``"1"`` is not ``1``, ``true`` is
    not ``1``; a property set to null does not exist."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    property: PropertyName
    equals: Scalar | None = None
    in_: Annotated[list[Scalar], Field(min_length=1, max_length=50)] | None = Field(default=None, alias="in")
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    exists: StrictBool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Where:
        given = [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(OPERATORS)} (got {', '.join(given) or 'none'})")
        return self

    def unmet(self, properties: Mapping[str, object]) -> str | None:
        """Why the properties fail this condition (naming the condition, never the customer's value), or None."""
        value = properties.get(self.property)
        if self.exists is not None:
            return (
                None if (value is not None) == self.exists else f"{self.property} {'missing' if self.exists else 'set'}"
            )
        if self.equals is not None:
            return None if same(value, self.equals) else f"{self.property} is not {json.dumps(self.equals)}"
        if self.in_ is not None:
            ok = any(same(value, option) for option in self.in_)
            return None if ok else f"{self.property} not in {json.dumps(self.in_)}"
        bounds = (("gt", ">", self.gt), ("gte", ">=", self.gte), ("lt", "<", self.lt), ("lte", "<=", self.lte))
        op, sign, bound = next((o, s, b) for o, s, b in bounds if b is not None)
        found = number(value)
        if found is None:
            return f"{self.property} is not a number"
        held = {"gt": found > bound, "gte": found >= bound, "lt": found < bound, "lte": found <= bound}[op]
        return None if held else f"{self.property} not {sign} {bound:g}"


_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def _checked_delay(value: str) -> str:
    found = _DURATION.match(value)
    if found is None:
        raise ValueError("a delay is a whole number of minutes, hours or days: 30m, 2h, 3d")
    if int(found[1]) * _UNITS[found[2]] > timedelta(days=30):
        raise ValueError("a delay is at most 30 days")
    return value


def _duration(value: str) -> timedelta:
    found = _DURATION.match(value)
    assert found is not None  # validated
    return int(found[1]) * _UNITS[found[2]]


class EventTrigger(_Model):
    """``trigger = { event = "subscription.renewed", delay = "2h", where = [{ property = "plan", in = ["annual"] }] }``:
    ``delay`` after the customer's latest ``custom.event`` of that name, if every ``where`` holds for its properties
    (checked when the delay has passed, on the occurrence the profile remembers)."""

    event: EventName
    delay: str = Field(default="0m", description="Minutes, hours or days: 30m, 2h, 3d (at most 30 days).")
    where: Annotated[list[Where], Field(max_length=10)] = Field(default_factory=list)

    @field_validator("event")
    @classmethod
    def _custom(cls, value: str) -> str:
        if value in DETAIL_TYPES:
            raise ValueError(f"{value} is a built-in detail-type, not a custom event: use one of the trigger kinds")
        return value

    @field_validator("delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _checked_delay(value)

    @property
    def kind(self) -> str:
        return "event"

    @property
    def spec(self) -> EventSpec:
        return EventSpec(self.event, _duration(self.delay))

    @property
    def key(self) -> str:
        return self.spec.key

    def unmet(self, properties: Mapping[str, object]) -> str | None:
        return next((f"where: {why}" for w in self.where if (why := w.unmet(properties))), None)


DEFAULT_DROP_PERCENT = Decimal(10)
CATALOG_PROPERTIES = ("product_id", "category", "currency", "old_price", "new_price", "drop_percent", "interest")
"""What a catalog trigger's ``where`` conditions and its creatives (``event``) read of the change."""
SHOWN: dict[Interest, str] = {"view": "viewed", "wishlist": "wishlisted", "cart": "put in the cart"}


class CatalogTrigger(_Model):
    """``trigger = { catalog = "back_in_stock", interest = "view" }``: ``delay`` after a product the customer showed
    interest in (put in the cart; ``"wishlist"``: on the wishlist or put in the cart; ``"view"``: any of the three)
    in the last 30 days came back in stock, or (``price_drop``) got at least ``min_drop_percent`` cheaper (10 unless
    given), if every ``where`` holds for the change (``nextbest.core.interest``). Carts by default: recording every
    customer's views costs ingest about half a write unit an event (README, *Back in stock and price drops*), carts a
    few hundredths. ``where = [{ property = "interest", equals = "wishlist" }]`` answers the wishlist alone."""

    catalog: CatalogKind
    interest: Interest = Field(
        default="cart",
        description="cart: put in the cart; wishlist: on the wishlist or put in the cart; view: viewed, on the "
        "wishlist or put in the cart.",
    )
    min_drop_percent: Annotated[Decimal, Field(gt=0, le=90)] | None = Field(
        default=None, description="price_drop: the smallest drop answered, in percent of the old price (default 10)."
    )
    delay: str = Field(default="0m", description="Minutes, hours or days: 30m, 2h, 3d (at most 30 days).")
    where: Annotated[list[Where], Field(max_length=10)] = Field(default_factory=list)

    @field_validator("delay")
    @classmethod
    def _duration(cls, value: str) -> str:
        return _checked_delay(value)

    @model_validator(mode="after")
    def _drop_for_price_drops(self) -> CatalogTrigger:
        if self.min_drop_percent is not None and self.catalog != "price_drop":
            raise ValueError('min_drop_percent is for catalog = "price_drop" only')
        unknown = sorted({w.property for w in self.where} - set(CATALOG_PROPERTIES))
        if unknown:
            raise ValueError(f"a catalog change has no property {', '.join(unknown)} ({', '.join(CATALOG_PROPERTIES)})")
        return self

    @property
    def kind(self) -> str:
        return "catalog"

    @property
    def spec(self) -> CatalogSpec:
        return CatalogSpec(self.catalog, _duration(self.delay))

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def drop_percent(self) -> Decimal | None:
        """The smallest price drop this campaign answers (None: it answers no price drop)."""
        return (self.min_drop_percent or DEFAULT_DROP_PERCENT) if self.catalog == "price_drop" else None

    @property
    def watch(self) -> Watch:
        """What ingest must record and look for on this campaign's behalf."""
        return Watch(interest=self.interest, back_in_stock=self.catalog == "back_in_stock",
                     min_drop_percent=self.drop_percent)  # fmt: skip

    def unmet(self, properties: Mapping[str, object]) -> str | None:
        """Why the change the profile remembers does not answer this campaign (its interest, its drop, a ``where``
        condition), or None."""
        shown: Interest = next((i for i in INTERESTS if i == properties.get("interest")), "view")
        if strength(shown) < strength(self.interest):
            wanted = " or ".join(SHOWN[i] for i in INTERESTS[strength(self.interest) :])
            return f"interest: {SHOWN[shown]}, never {wanted}"
        drop, least = number(properties.get("drop_percent")), self.drop_percent
        if least is not None and (drop is None or drop < least):
            return f"price drop below {least:g}%"
        return next((f"where: {why}" for w in self.where if (why := w.unmet(properties))), None)


class DateTrigger(_Model):
    """``trigger = { date = "birthday", every_year = true, local_time = "09:00" }``: on a date the shop sends on
    ``customer.identified`` (``dates``), at ``local_time`` in the customer's time zone (the policy's default zone if
    unknown), shifted ``days_before`` or ``days_after`` it; every year, or once."""

    date: DateName
    every_year: bool = Field(default=False, description="Birthdays, anniversaries: each year on its month and day.")
    days_before: Annotated[int, Field(ge=0, le=365)] = 0
    days_after: Annotated[int, Field(ge=0, le=365)] = 0
    local_time: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "09:00"

    @model_validator(mode="after")
    def _one_offset(self) -> DateTrigger:
        if self.days_before and self.days_after:
            raise ValueError("give days_before or days_after, not both")
        return self

    @property
    def kind(self) -> str:
        return "date"

    @property
    def spec(self) -> DateSpec:
        hour, minute = map(int, self.local_time.split(":"))
        return DateSpec(self.date, self.every_year, self.days_after - self.days_before, time(hour, minute))

    @property
    def key(self) -> str:
        return self.spec.key


def _trigger_tag(value: Any) -> str:
    """Which trigger a campaign file means, by the key that defines it: ``event``, ``date``, ``catalog`` or
    ``kind``."""
    if isinstance(value, dict):
        return next((tag for tag in ("event", "date", "catalog") if tag in value), "kind")
    tags: dict[type, str] = {EventTrigger: "event", DateTrigger: "date", CatalogTrigger: "catalog"}
    return tags.get(type(value), "kind")


AnyTrigger = Annotated[
    Annotated[Trigger, Tag("kind")]
    | Annotated[EventTrigger, Tag("event")]
    | Annotated[DateTrigger, Tag("date")]
    | Annotated[CatalogTrigger, Tag("catalog")],
    Discriminator(_trigger_tag),
]


class Audience(_Model):
    """Who may receive it; every bound is optional. Model scores fall back to 'unknown' without models,
    and a bound on an unknown score excludes the customer (never guess in someone's favour)."""

    min_orders: int | None = None
    max_orders: int | None = None
    min_lapse_risk: Annotated[float, Field(ge=0, le=1)] | None = None
    max_lapse_risk: Annotated[float, Field(ge=0, le=1)] | None = None
    min_propensity: Annotated[float, Field(ge=0, le=1)] | None = None
    min_cart_value: Decimal | None = None
    categories_any: list[str] = Field(default_factory=list, description="Any affinity to one of these.")


class Creative(_Model):
    """Jinja templates; variables: ``first_name``, ``items`` (name, quantity, unit_price, price, url, image_url,
    in_stock, category, category_url), ``cart_value``, ``currency``, ``link`` (the campaign's page of the shop),
    ``cart_url``, ``home_url``, ``category`` (the last product viewed's category: name and url, its page; None when
    the catalog gives no page), ``recommendations`` (in-stock products: name, url, image_url, price, currency,
    category, category_url; each prints as its name),
    ``discount_percent``, ``coupon`` (the offer's code, when it has one: ``nextbest.core.coupons``), ``step``,
    ``event`` (the properties of the custom event the campaign answers: ``{{ event.plan }}``, or of the catalog change:
    ``{{ event.old_price }}``; empty otherwise), ``product`` (a catalog campaign's product, as ``recommendations``'
    are; None otherwise).
    Every URL carries the message's attribution parameters (``nextbest.core.links``). HTML is autoescaped."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    html: Annotated[str, StringConstraints(min_length=1)]
    text: Annotated[str, StringConstraints(min_length=1)]
    sms: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    push: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = Field(
        default=None, description="Notification body; the rendered subject is its title."
    )


class Variant(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")]
    weight: Annotated[float, Field(gt=0)] = Field(default=1.0, description="Used when allocation is fixed.")
    creative: Creative


class Offer(_Model):
    description: str = ""
    discount_percent: Annotated[Decimal, Field(ge=0, le=90)] = Decimal(0)
    fixed_cost: Annotated[Decimal, Field(ge=0)] = Field(default=Decimal(0), description="Per redemption.")
    fulfilment: Fulfilment = "any"
    coupon: CouponKind = Field(
        default="none",
        description="A code behind the offer, as the template variable ``coupon``: ``signed`` (derived from a stack "
        "secret, verified by the shop's checkout) or ``pool`` (one of the codes the shop uploaded, each given once); "
        "see ``nextbest.core.coupons``.",
    )
    coupon_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,8}$")] | None = Field(
        default=None, description="signed: what a code starts with (default: the campaign id's first word, CART)."
    )
    coupon_valid_days: Annotated[int, Field(ge=1, le=365)] = Field(
        default=30, description="signed: a code is valid this many days after the message."
    )


COUPON_FIELDS = ("coupon", "coupon_prefix", "coupon_valid_days")
"""Offer fields added after approvals' v2 digest: covered only when a coupon is set (see Campaign.digest)."""


class FollowUp(_Model):
    """When the message is ignored (no open, click or order) for ``after_hours``, try again with a
    stronger incentive, at most ``max_steps`` times."""

    after_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 72
    max_steps: Annotated[int, Field(ge=1, le=5)] = 1
    extra_discount_percent: Annotated[Decimal, Field(ge=0, le=50)] = Decimal(5)


DIGEST_VERSION = "v2:"
NOT_APPROVED = {"name", "status", "approved_by", "approved_at", "approved_digest", "review_note"}
"""The only fields a campaign may change without a new approval: its display name and the approval record."""


class Campaign(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")]
    name: str
    status: Literal["draft", "approved", "paused", "archived"]
    approved_by: str | None = None
    approved_at: date | None = None
    approved_digest: str | None = Field(default=None, description="Digest of what was approved; see digest().")
    review_note: str | None = Field(default=None, description="Set at load when an approval no longer holds.")
    trigger: AnyTrigger
    audience: Audience = Audience()
    channels: Annotated[list[Channel], Field(min_length=1)] = Field(
        description="In order of preference; the first one the customer consented to and can receive wins."
    )
    variants: Annotated[list[Variant], Field(min_length=1)]
    allocation: Literal["thompson", "fixed"] = "thompson"
    offer: Offer = Offer()
    margin_rate: Annotated[Decimal, Field(ge=0, le=1)] = Field(
        default=Decimal("0.3"), description="Share of an order's value that is margin."
    )
    base_conversion_rate: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.05, description="Used as the purchase propensity when no model is deployed."
    )
    priority: int = Field(default=0, description="Breaks ties in expected value.")
    override: bool = Field(default=False, description="Marketers' override: wins over value (by priority).")
    conflict_group: str | None = Field(default=None, description="At most one message per group per window.")
    holdout_percent: Annotated[float, Field(ge=0, le=50)] = 10.0
    cooldown_hours: Annotated[int, Field(ge=0)] = 24
    max_sends_per_hour: Annotated[int, Field(ge=1)] | None = None
    budget: Annotated[Decimal, Field(gt=0)] | None = Field(default=None, description="Total offer cost committed.")
    follow_up: FollowUp | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _gate(self) -> Campaign:
        if self.status == "approved" and not (self.approved_by and self.approved_at and self.approved_digest):
            raise ValueError("an approved campaign must record approved_by, approved_at and approved_digest")
        for channel in ("sms", "push"):
            for variant in self.variants:
                if channel in self.channels and not getattr(variant.creative, channel):
                    raise ValueError(f"channel {channel} needs creative.{channel} in variant {variant.id}")
        if self.offer.coupon != "none":  # a code the message never shows is a code given away for nothing
            for variant in self.variants:
                if not any("coupon" in (t or "") for t in (variant.creative.html, variant.creative.text)):
                    raise ValueError(
                        f"offer.coupon is {self.offer.coupon}: variant {variant.id} must show {{{{ coupon }}}}"
                    )
        ids = [v.id for v in self.variants]
        if len(set(ids)) != len(ids):
            raise ValueError("variant ids must be unique")
        if isinstance(self.trigger, CatalogTrigger) and self.follow_up is not None:
            raise ValueError("a catalog campaign has no follow_up: by then the product may be gone or dearer again")
        return self

    def digest(self) -> str:
        """What an approval covers: everything that changes who hears what, when and at what cost — the id (a
        copy under a new id is a new campaign), the creatives, offer, channels, audience, trigger, follow-ups,
        holdout, cooldown, caps, budget, priority and override, dates — all but the display name and the
        approval's own record. Versioned: an approval under an older, narrower digest no longer holds."""
        covered = self.model_dump(mode="json", exclude=NOT_APPROVED)
        if self.offer.coupon == "none":  # an offer without a code digests as before coupons existed: approvals hold
            covered["offer"] = {k: v for k, v in covered["offer"].items() if k not in COUPON_FIELDS}
        return DIGEST_VERSION + hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def coupon_prefix(self) -> str:
        return self.offer.coupon_prefix or default_prefix(self.id)

    def live(self, at: datetime) -> bool:
        starts = self.starts_at or datetime.min.replace(tzinfo=UTC)
        ends = self.ends_at or datetime.max.replace(tzinfo=UTC)
        return self.status == "approved" and starts <= at < ends

    def variant(self, variant_id: str | None) -> Variant:
        return next((v for v in self.variants if v.id == variant_id), self.variants[0])

    @property
    def triggers(self) -> list[str]:
        """Every trigger this campaign answers: its own, and its follow-up's."""
        return [self.trigger.key, *([FOLLOW_UP + self.id] if self.follow_up else [])]


class Window(_Model):
    day: Annotated[int, Field(ge=0, le=20)] | None = None
    week: Annotated[int, Field(ge=0, le=20)] | None = None


class QuietHours(_Model):
    start_hour: Annotated[int, Field(ge=0, le=23)] = 21
    end_hour: Annotated[int, Field(ge=0, le=23)] = 8
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](["sms", "push"]))
    default_time_zone: str = "UTC"


class Policy(_Model):
    """Rules over all campaigns. Caps count at most 20 messages per window: the profile keeps the last 20."""

    global_control_percent: Annotated[float, Field(ge=0, le=50)] = 5.0
    caps: dict[Literal["all", "email", "sms", "push"], Window] = Field(default_factory=dict)
    quiet_hours: QuietHours = QuietHours()
    conflict_window_hours: Annotated[int, Field(ge=0)] = 72
    fatigue_cost: Annotated[Decimal, Field(ge=0)] = Field(
        default=Decimal("0.5"), description="Value lost per message the customer got in the last 7 days."
    )
    channel_cost: dict[Channel, Decimal] = Field(
        default_factory=lambda: dict[Channel, Decimal](
            {"email": Decimal("0.001"), "sms": Decimal("0.01"), "push": Decimal("0.0005")}
        )
    )
    default_order_value: Annotated[Decimal, Field(gt=0)] = Decimal(50)
    approvers: list[Annotated[str, StringConstraints(min_length=1)]] = Field(
        default_factory=list,
        description="Who may approve campaigns; an approval by anyone else does not hold. Empty: nobody.",
    )


def _errors(path: Path, error: ValidationError) -> str:
    fields = "; ".join(f"{_field(e['loc']) or '<file>'}: {e['msg']}" for e in error.errors())
    return f"{path.name}: {fields}"


def _field(loc: tuple[int | str, ...]) -> str:
    """The field as written in the file: ``trigger.where.0.gt``, without the tag pydantic adds for which trigger
    shape it tried (``trigger.event.where…``)."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["trigger"] and parts[1:2] and parts[1] in ("kind", "event", "date", "catalog"):
        del parts[1]
    return ".".join(parts)


def read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise CampaignError(f"{path.name}: not valid TOML: {error}") from None


def load_campaigns(directory: Path) -> list[Campaign]:
    """Every campaign ``*.toml`` under ``directory`` (not policy.toml); raises CampaignError naming the file
    and field at fault. An approved campaign changed since its approval comes back as a draft."""
    campaigns: list[Campaign] = []
    policy = load_policy(directory)
    for path in sorted(directory.glob("*.toml")):
        if path.name == POLICY_FILE:
            continue
        try:
            campaign = Campaign.model_validate(read_toml(path))
        except ValidationError as error:
            raise CampaignError(_errors(path, error)) from None
        campaigns.append(_approval_holds(campaign, policy.approvers))
    ids = [c.id for c in campaigns]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CampaignError(f"campaign ids used twice: {', '.join(duplicates)}")
    return campaigns


def with_holdout_floor(campaigns: list[Campaign], percent: float) -> list[Campaign]:
    """Every campaign holding out at least ``percent`` of its audience (its own ``holdout_percent`` if larger).

    A deployment's setting (context ``holdoutFloorPercent``), not a campaign's: while a shop learns what its
    campaigns earn (a launch, a staging stack, the demo), half of every audience held out gives each campaign's
    uplift an interval with a fraction of the traffic, then a redeploy without it goes back to the campaigns' own
    holdouts. It only ever sends less than the approved campaigns would, so it needs no new approval."""
    return [c if c.holdout_percent >= percent else c.model_copy(update={"holdout_percent": percent}) for c in campaigns]


def _approval_holds(campaign: Campaign, approvers: list[str]) -> Campaign:
    """The campaign, or a draft saying why its approval no longer holds."""
    if campaign.status != "approved":
        return campaign
    note = None
    if campaign.approved_by not in approvers:
        note = f"approved by {campaign.approved_by}, who is not among policy.toml's approvers"
    elif not (campaign.approved_digest or "").startswith(DIGEST_VERSION):
        note = "approved before approvals covered holdout, caps, budget and override: approve it again"
    elif campaign.approved_digest != campaign.digest():
        note = "changed since approval: approve it again"
    return campaign.model_copy(update={"status": "draft", "review_note": note}) if note else campaign


POLICY_FILE = "policy.toml"


def load_policy(directory: Path) -> Policy:
    path = directory / POLICY_FILE
    if not path.exists():
        return Policy()
    try:
        return Policy.model_validate(read_toml(path))
    except ValidationError as error:
        raise CampaignError(_errors(path, error)) from None


def trigger_delays(campaigns: list[Campaign], time_zone: str = "UTC") -> TriggerDelays:
    """When ingest should wake decide for each trigger an event sets: the shortest delay of any approved
    campaign, and the lapse check if an at-risk or win-back campaign is approved (follow-ups are set by decide).
    A custom event's, a date's and a catalog change's trigger carry their timing in their name; ``time_zone`` is where
    a date trigger fires for a customer whose zone is unknown (the policy's ``quiet_hours.default_time_zone``), and
    ``watch`` what the catalog campaigns need recorded and looked for, together."""
    delays = TriggerDelays(time_zone=time_zone)
    for campaign in campaigns:
        trigger = campaign.trigger
        if campaign.status != "approved":
            continue
        if isinstance(trigger, EventTrigger | CatalogTrigger):
            delays[trigger.key] = trigger.spec.delay
            if isinstance(trigger, CatalogTrigger):
                delays.watch = delays.watch.wider(trigger.watch)
        elif isinstance(trigger, DateTrigger):
            delays[trigger.key] = timedelta(0)
        elif trigger.kind in SWEPT:
            delays[LAPSE] = LAPSE_CHECK_EVERY
        else:
            delays[trigger.kind] = min(delays.get(trigger.kind, trigger.delay), trigger.delay)
    return delays
