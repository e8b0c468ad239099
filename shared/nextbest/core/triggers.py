"""Triggers a campaign file defines itself: on a shop's own event (``custom.event``) and on a customer's dates.

The six built-in triggers are named by their kind (``cart_abandoned``…). These two are named by what defines their
timing, so that ingest, which only learns each trigger's name and delay from the approved campaigns (the function's
environment, derived at synth), can arm them without reading the campaign files:

* ``event:<name>+<minutes>m``: ``minutes`` after the customer's latest ``custom.event`` called ``name``
  (``event:subscription.renewed+120m``). Two campaigns with the same event and delay answer one trigger and
  compete; another delay is another trigger, so each campaign fires when it said it would.
* ``date:<attribute>:<yearly|once><±days>d@<HH:MM>``: at ``HH:MM`` on the wall clock of the customer's time zone,
  on the date attribute (every year for ``yearly``: birthdays, anniversaries; once for ``once``), shifted by
  ``days`` (``date:birthday:yearly+0d@09:00``, ``date:contract_ends:once-30d@09:00``).
* ``catalog:<back_in_stock|price_drop>+<minutes>m``: ``minutes`` after a product the customer showed interest in
  came back in stock or dropped in price (``nextbest.core.interest``). What ingest must record and watch for them
  (which interests, the smallest drop) is a :class:`Watch`, derived from the approved campaigns with their delays.

Everything here is pure: the names, the next occurrence of a date, and the property predicates (``Where``) that
decide evaluates against the occurrence the profile remembers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

EVENT = "event:"
DATE = "date:"
DATE_GRACE = timedelta(hours=12)
"""How late a date trigger may still fire: the poll is a minute or two late, and an event written just after the
due time must not push the occurrence to next year; a date learnt (or a poll resumed) later than this waits for
the next occurrence instead of congratulating the customer a day late."""

CATALOG = "catalog:"
_EVENT_KEY = re.compile(r"^event:(?P<name>[^+]+)\+(?P<minutes>\d+)m$")
_CATALOG_KEY = re.compile(r"^catalog:(?P<kind>back_in_stock|price_drop)\+(?P<minutes>\d+)m$")
_DATE_KEY = re.compile(r"^date:(?P<attribute>[a-z0-9_]+):(?P<every>yearly|once)(?P<days>[+-]\d+)d@(?P<at>\d\d:\d\d)$")


@dataclass(frozen=True)
class EventSpec:
    """A trigger ``delay`` after the customer's latest custom event ``name``."""

    name: str
    delay: timedelta

    @property
    def key(self) -> str:
        return f"{EVENT}{self.name}+{int(self.delay.total_seconds() // 60)}m"

    @staticmethod
    def parse(key: str) -> EventSpec | None:
        found = _EVENT_KEY.match(key)
        if found is None:
            return None
        return EventSpec(found["name"], timedelta(minutes=int(found["minutes"])))


CatalogKind = Literal["back_in_stock", "price_drop"]
Interest = Literal["view", "wishlist", "cart"]
"""How a customer showed interest in a product, weakest first (:data:`INTERESTS`): viewed it, put it on their
wishlist, put it in the cart. A campaign answering one answers the stronger ones too, so "view" answers everyone
interested and "cart", the default, carts only."""
INTERESTS: tuple[Interest, ...] = ("view", "wishlist", "cart")


def strength(interest: Interest) -> int:
    """The interest's place in :data:`INTERESTS`: a profile keeps the strongest it showed."""
    return INTERESTS.index(interest)


@dataclass(frozen=True)
class CatalogSpec:
    """A trigger ``delay`` after a product the customer is interested in came back in stock or dropped in price.
    The change is remembered on the profile like a custom event, as the occurrence named :attr:`occurrence`
    (a name no custom event can have)."""

    kind: CatalogKind
    delay: timedelta

    @property
    def key(self) -> str:
        return f"{CATALOG}{self.kind}+{int(self.delay.total_seconds() // 60)}m"

    @property
    def occurrence(self) -> str:
        return f"{CATALOG}{self.kind}"

    @staticmethod
    def parse(key: str) -> CatalogSpec | None:
        found = _CATALOG_KEY.match(key)
        if found is None:
            return None
        kind: CatalogKind = "back_in_stock" if found["kind"] == "back_in_stock" else "price_drop"
        return CatalogSpec(kind, timedelta(minutes=int(found["minutes"])))


class Watch(BaseModel):
    """What ingest records and looks for on behalf of the approved catalog campaigns (the widest of their needs):
    which interests to record (``None``: none, no campaign answers a catalog change), whether a product back in stock
    is looked for, and the smallest price drop one answers (``None``: price drops are not looked for). Derived at
    synth (``nextbest.core.campaigns.trigger_delays``) and handed to ingest in its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interest: Interest | None = None
    back_in_stock: bool = False
    min_drop_percent: Annotated[Decimal, Field(gt=0, le=90)] | None = None

    def records(self, kind: Interest) -> bool:
        """Whether an interest of this kind is recorded: a cart always (while any catalog campaign is approved), a
        wishlist if one answers wishlists or views, a view only if one answers viewers."""
        return self.interest is not None and strength(kind) >= strength(self.interest)

    def wider(self, other: Watch) -> Watch:
        """What both need: the wider (weaker) interest, either change, the smaller drop."""
        interests = sorted((i for i in (self.interest, other.interest) if i is not None), key=strength)
        drops = [d for d in (self.min_drop_percent, other.min_drop_percent) if d is not None]
        return Watch(
            interest=interests[0] if interests else None,
            back_in_stock=self.back_in_stock or other.back_in_stock,
            min_drop_percent=min(drops) if drops else None,
        )


@dataclass(frozen=True)
class DateSpec:
    """A trigger at ``local_time`` on the customer's date ``attribute`` shifted by ``offset_days``, every year or
    once."""

    attribute: str
    every_year: bool
    offset_days: int
    local_time: time

    @property
    def key(self) -> str:
        every = "yearly" if self.every_year else "once"
        return f"{DATE}{self.attribute}:{every}{self.offset_days:+d}d@{self.local_time:%H:%M}"

    @staticmethod
    def parse(key: str) -> DateSpec | None:
        found = _DATE_KEY.match(key)
        if found is None:
            return None
        hour, minute = map(int, found["at"].split(":"))
        return DateSpec(found["attribute"], found["every"] == "yearly", int(found["days"]), time(hour, minute))

    def next_due(self, value: date, zone: ZoneInfo, after: datetime) -> datetime | None:
        """The first occurrence strictly after ``after`` (an aware instant), or None (a one-off already past).

        A yearly date falls on its month and day each year (29 February on the 28th in other years); the offset is
        counted from there. The instant is ``local_time`` on the customer's wall clock, so it moves with their
        daylight saving time."""
        if not self.every_year:
            at = self._instant(value, zone)
            return at if at > after else None
        year = after.astimezone(zone).year
        for candidate in range(year - 2, year + 3):  # an offset of up to a year each way crosses one year boundary
            at = self._instant(_in_year(value, candidate), zone)
            if at > after:
                return at
        return None  # unreachable: some year ahead always qualifies

    def _instant(self, day: date, zone: ZoneInfo) -> datetime:
        """In UTC, as every other due time is kept (the profile stores it as written)."""
        return datetime.combine(day + timedelta(days=self.offset_days), self.local_time, tzinfo=zone).astimezone(UTC)


def _in_year(value: date, year: int) -> date:
    try:
        return value.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def zone_of(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone if it names a known one, else the shop's default (the policy's), else UTC."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


Scalar = str | int | float | bool


def same(a: object, b: object) -> bool:
    """Equality without Python's ``True == 1``: a flag is not a number, ``"1"`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
