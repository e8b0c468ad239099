"""A shopper population, as the events a shop would put on the bus over a few days.

Customers browse in anonymous sessions, log in (``customer.identified`` links the cookie to their id,
e-mail and phone), fill carts, buy or abandon, grant and sometimes withdraw consent. A few use SES
mailbox-simulator addresses that bounce or complain; a few events are malformed or sent twice, as real
producers do. The simulator also keeps the ground truth of consent, which the demo checks sends against, and of
what messages do: shoppers respond to them (:class:`ResponseModel`), so each campaign's true effect is known.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nextbest.core.decision import Decision

CATALOGUE = [
    (f"sku-{n:03d}", name, category, Decimal(price))
    for n, (name, category, price) in enumerate(
        [
            ("Hydrating serum", "skincare", "32.00"),
            ("Vitamin C cream", "skincare", "45.00"),
            ("Night repair oil", "skincare", "58.00"),
            ("Matte lipstick", "makeup", "21.00"),
            ("Volume mascara", "makeup", "19.50"),
            ("Liquid foundation", "makeup", "39.00"),
            ("Eau de parfum 50 ml", "fragrance", "89.00"),
            ("Body mist", "fragrance", "24.00"),
            ("Shampoo bar", "hair", "14.00"),
            ("Repair mask", "hair", "28.00"),
            ("Brush set", "tools", "49.00"),
            ("Sheet masks x5", "skincare", "18.00"),
        ],
        start=1,
    )
]


SHOP = "https://shop.example"
"""The simulated shop's site (the emulated stack's ``siteUrl``): its product pages and images are under it."""


def product_url(sku: str, name: str, kind: str = "products") -> str:
    slug = "-".join(name.lower().split())
    return f"{SHOP}/{kind}/{slug}" + (".jpg" if kind == "images" else "")


def catalog_events(seed: int, at: datetime) -> list[dict[str, Any]]:
    """The shop publishing its catalog before anything else happens: a ``product.updated`` per product, so messages
    show names, images, prices and product pages. Drawn from no random stream, so every other event of a seed stays
    what it was."""
    return [
        {
            "DetailType": "product.updated",
            "Source": "shop.catalog",
            "Detail": {
                "event_id": f"ev-{seed}-product-{sku}",
                "occurred_at": at.isoformat(),
                "product_id": sku,
                "name": name,
                "url": product_url(sku, name),
                "image_url": product_url(sku, name, "images"),
                "price": str(price),
                "currency": "USD",
                "category": category,
                "category_url": f"{SHOP}/collections/{category}",
                "availability": "in_stock",
            },
            "at": at,
        }
        for sku, name, category, price in CATALOGUE
    ]


TIME_ZONE = "America/New_York"
"""Where the shop's shoppers live (their ``customer.identified`` events say so)."""


@dataclass
class Truth:
    """What really happened to consent, per channel address: (when, granted) in time order; and who each address
    belongs to, and the time zone they live in."""

    consent: dict[tuple[str, str], list[tuple[datetime, bool]]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    """Address (e-mail, lower case, or phone number) -> the customer id of the shopper it belongs to."""
    time_zones: dict[str, str] = field(default_factory=dict)
    """Customer id -> the IANA time zone the shopper lives in."""

    def record(self, channel: str, address: str, at: datetime, granted: bool) -> None:
        self.consent.setdefault((channel, address.lower()), []).append((at, granted))

    def allowed(self, channel: str, address: str, at: datetime) -> bool:
        history = sorted(self.consent.get((channel, address.lower()), []))
        state = False
        for when, granted in history:
            if when <= at:
                state = granted
        return state


@dataclass
class Population:
    events: list[dict[str, Any]]
    """EventBridge entries (DetailType, Detail as dict, Source), ordered by occurred_at."""
    truth: Truth
    customers: int
    start: datetime
    end: datetime
    seed: int = 7


def simulate(customers: int = 2000, days: int = 5, seed: int = 7, start: datetime | None = None) -> Population:
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    end = start + timedelta(days=days)
    shop = _Shop(rng, seed, days, start, end)
    for n in range(customers):
        shop.shopper(n)
    events = [e for e in shop.events if e["at"] < end]
    _producer_mistakes(rng, events, end)
    events.sort(key=lambda e: e["at"])
    events[:0] = catalog_events(seed, min([start, *(e["at"] for e in events)]) - timedelta(minutes=1))
    return Population(events=events, truth=shop.truth, customers=customers, start=start, end=end, seed=seed)


@dataclass
class _Shopper:
    n: int
    email: str
    phone: str | None
    consents_email: bool
    consents_sms: bool
    identified: bool = False

    @property
    def cid(self) -> str:
        return f"cus_{self.n:05d}"

    def address(self, channel: str) -> str:
        return self.phone if channel == "sms" and self.phone else self.email


@dataclass
class _Shop:
    """The events of :func:`simulate` as they are drawn, shopper after shopper, from one random stream: the same
    seed gives the same events only as long as the draws stay in the same order."""

    rng: random.Random
    seed: int
    days: int
    start: datetime
    end: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    truth: Truth = field(default_factory=Truth)

    def emit(self, kind: str, at: datetime, **detail: Any) -> None:
        body = {"event_id": f"ev-{self.seed}-{len(self.events) + 1:07d}", "occurred_at": at.isoformat(), **detail}
        self.events.append({"DetailType": kind, "Source": "shop.web", "Detail": body, "at": at})

    def shopper(self, n: int) -> None:
        """Who they are, maybe a purchase history from before the simulated days, then their sessions."""
        rng = self.rng
        roll = rng.random()
        scenario = "bounce" if roll < 0.06 else "complaint" if roll < 0.075 else "success"
        phone = f"+1415{n:07d}" if rng.random() < 0.55 else None
        consents_email = rng.random() < 0.85
        consents_sms = phone is not None and rng.random() < 0.7
        shopper = _Shopper(n, f"{scenario}+cus_{n:05d}@simulator.amazonses.com", phone, consents_email, consents_sms)
        at = self.start + timedelta(minutes=rng.uniform(0, self.days * 24 * 60 * 0.8))
        sessions = 1 + _poisson(rng, 1.3)
        if rng.random() < 0.4:
            self.history(shopper)
        for s in range(sessions):
            at = self.session(shopper, s, at)
            if at >= self.end:
                break

    def history(self, shopper: _Shopper) -> None:
        """A customer who signed up and ordered before the simulated days, at their own rhythm."""
        rng, n = self.rng, shopper.n
        joined = self.start - timedelta(days=rng.uniform(60, 400))
        self.sign_up(shopper, joined)
        rhythm = rng.uniform(15, 90)  # this customer's own days between orders
        when = joined + timedelta(days=rng.uniform(0, 10))
        for k in range(20):
            if when >= self.start:
                break
            items = [_line(rng) for _ in range(1 + _poisson(rng, 0.4))]
            self.order(when, f"old-{n:05d}-{k}", items, customer_id=shopper.cid)
            when += timedelta(days=rhythm * rng.uniform(0.7, 1.3) * (1 if rng.random() < 0.85 else 4))

    def sign_up(self, shopper: _Shopper, at: datetime, anonymous_id: str | None = None) -> None:
        """``customer.identified`` with every identifier, and the consent given at sign-up."""
        phone = shopper.phone
        session = {"anonymous_id": anonymous_id} if anonymous_id else {}
        profile = {
            "customer_id": shopper.cid,
            **session,
            "email": shopper.email,
            "first_name": f"Shopper{shopper.n}",
            "time_zone": TIME_ZONE,
        }
        self.truth.time_zones[shopper.cid] = TIME_ZONE
        self.truth.owners |= {shopper.email.lower(): shopper.cid, **({phone: shopper.cid} if phone else {})}
        self.emit("customer.identified", at, **profile, **({"phone": phone} if phone else {}))
        self.consent(shopper, "email", shopper.consents_email, "signup", at)
        if phone:
            self.consent(shopper, "sms", shopper.consents_sms, "signup", at)
        shopper.identified = True

    def consent(self, shopper: _Shopper, channel: str, granted: bool, source: str, at: datetime) -> None:
        self.emit("consent.updated", at, customer_id=shopper.cid, channel=channel, granted=granted, source=source)
        self.truth.record(channel, shopper.address(channel), at, granted)

    def session(self, shopper: _Shopper, s: int, at: datetime) -> datetime:
        """One visit: products viewed, maybe a login, a cart and an order, an opt-out; returns the next visit's time."""
        rng, anon = self.rng, f"anon-{shopper.n:05d}-{s}"
        logged_in = shopper.identified or rng.random() < 0.75
        ids = {"anonymous_id": anon}
        if s > 0 and shopper.identified and rng.random() < 0.5:
            ids["customer_id"] = shopper.cid  # returning customer, already logged in
        for _ in range(1 + _poisson(rng, 1.8)):
            sku, _name, category, price = rng.choice(CATALOGUE)
            self.emit("product.viewed", at, product_id=sku, category=category, price=str(price), **ids)
            at += timedelta(seconds=rng.uniform(20, 240))
        if logged_in and not shopper.identified:
            self.sign_up(shopper, at, anon)
            ids = {"anonymous_id": anon, "customer_id": shopper.cid}
        elif logged_in:
            self.emit("customer.identified", at, customer_id=shopper.cid, anonymous_id=anon)
            ids = {"anonymous_id": anon, "customer_id": shopper.cid}
        if rng.random() < 0.55:
            at = self.cart(shopper, s, ids, at)
        if shopper.identified and rng.random() < 0.04:
            channel = "sms" if shopper.phone and rng.random() < 0.3 else "email"
            self.consent(shopper, channel, False, "preference_center", at)
        return at + timedelta(hours=rng.uniform(4, 40))

    def cart(self, shopper: _Shopper, s: int, ids: dict[str, str], at: datetime) -> datetime:
        """A cart filled, then bought (and emptied) or left; returns when the shopper is done with it."""
        rng = self.rng
        items = [_line(rng) for _ in range(1 + _poisson(rng, 0.6))]
        self.emit("cart.updated", at, items=items, **ids)
        at += timedelta(minutes=rng.uniform(1, 20))
        if rng.random() < 0.35:
            self.order(at, f"ord-{shopper.n:05d}-{s}", items, **ids)
            self.emit("cart.updated", at + timedelta(seconds=5), items=[], **ids)
        return at

    def order(self, at: datetime, order_id: str, items: list[dict[str, Any]], **ids: str) -> None:
        total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
        self.emit("order.placed", at, order_id=order_id, items=items, total=str(total), **ids)


def _producer_mistakes(rng: random.Random, events: list[dict[str, Any]], end: datetime) -> None:
    """About 1% of events repeated (at-least-once producers) and 0.5% malformed in typical ways."""
    extra = []
    for event in rng.sample(events, k=len(events) // 100):
        extra.append({**event, "at": event["at"] + timedelta(seconds=rng.uniform(1, 600))})
    mistakes = [
        lambda d: {k: v for k, v in d.items() if k not in ("customer_id", "anonymous_id", "email", "phone")},
        lambda d: {**d, "occurred_at": "yesterday"},
        lambda d: {**d, "unexpected": True},
        lambda d: {**d, "occurred_at": (end + timedelta(days=30)).isoformat()},
    ]
    for event in rng.sample(events, k=len(events) // 200):
        broken = rng.choice(mistakes)(dict(event["Detail"]))
        extra.append({**event, "Detail": broken, "at": event["at"] + timedelta(seconds=1), "malformed": True})
    events.extend(e for e in extra if e["at"] < end)


def _line(rng: random.Random) -> dict[str, Any]:
    sku, name, category, price = rng.choice(CATALOGUE)
    return {
        "product_id": sku,
        "name": name,
        "category": category,
        "quantity": rng.choice([1, 1, 1, 2]),
        "unit_price": str(price),
    }


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, pow(2.718281828459045, -mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


# --- How shoppers respond to messages: the ground truth the uplift report is measured against ------------------
#
# ``simulate`` above is the shop *without* messages: every order in it is what the shopper does anyway, the
# potential outcome Y(0). A message can only add an order (the response order below), never take one away, so
# Y(1) = Y(0) plus the response order, and the simulator knows both outcomes for every decided customer, sent
# or held out: the response of a held-out decision is drawn exactly as if it had been sent (same hash of the
# seed and the decision id), it is just never realised.


@dataclass(frozen=True)
class Effect:
    """How shoppers respond to one campaign (one of its variants) once its message reaches them.

    ``purchase`` is the true effect: the probability of an *extra* order, placed a truncated-exponential delay
    (mean ``mean_delay_hours``, at most ``within_hours``) after the message. Buyers open and click (they buy
    through the link); the others open an e-mail with probability ``open`` and click with ``click`` once opened.
    """

    purchase: float = 0.0
    open: float = 0.0
    click: float = 0.0
    mean_delay_hours: float = 12.0
    within_hours: float = 72.0


ANY_VARIANT = "*"
TRUE_EFFECTS: dict[str, dict[str, Effect]] = {
    # Clearly effective, and its variants differ: the plain reminder works twice as well as urgency.
    "cart-abandonment": {
        "reminder": Effect(purchase=0.12, open=0.45, click=0.35, mean_delay_hours=8),
        "urgency": Effect(purchase=0.06, open=0.45, click=0.35, mean_delay_hours=8),
    },
    "replenishment": {ANY_VARIANT: Effect(purchase=0.06, open=0.35, click=0.25, mean_delay_hours=24)},
    "at-risk": {ANY_VARIANT: Effect(purchase=0.04, open=0.25, click=0.2, mean_delay_hours=24)},
    "win-back": {ANY_VARIANT: Effect(purchase=0.03, open=0.2, click=0.2, mean_delay_hours=36)},
    # Small, and nothing at all: read but never the reason anyone buys.
    "browse-abandonment": {ANY_VARIANT: Effect(purchase=0.015, open=0.3, click=0.2, mean_delay_hours=12)},
    "post-purchase": {ANY_VARIANT: Effect(purchase=0.0, open=0.35, click=0.1)},
}
"""Campaign id -> variant id (or ``ANY_VARIANT``) -> how shoppers respond; campaigns not named have no effect."""


@dataclass(frozen=True)
class Exposure:
    """One decided message of a campaign: sent, or held out ("would have sent").

    ``channel`` and ``address`` are where the message went (for a held-out decision: where it would have gone);
    ``address`` is None when it reached nobody.
    """

    decision_id: str
    campaign_id: str
    variant: str | None
    channel: str
    customer_id: str
    at: datetime
    address: str | None
    products: tuple[str, ...] = ()
    held_out: bool = False
    step: int = 0
    """0 for a first message, n for its n-th follow-up (one episode: see ``nextbest.core.attribution``)."""
    coupon: str | None = None
    """The offer's code the message carried, which the shopper's order uses."""

    @classmethod
    def of(cls, decision: Decision, channel: str, address: str | None, customer_id: str) -> Exposure:
        """A send or holdout decision, as the message that went (or would have gone) to ``address``."""
        return cls(
            decision_id=decision.decision_id,
            campaign_id=decision.campaign_id or "",
            variant=decision.variant,
            channel=channel,
            customer_id=customer_id,
            at=decision.decided_at,
            address=address,
            products=tuple(decision.products),
            held_out=decision.action == "holdout",
            step=decision.step,
            coupon=decision.coupon,
        )


@dataclass(frozen=True)
class Response:
    """What the shopper does after the message: engagement and the extra order (an EventBridge entry)."""

    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    order: dict[str, Any] | None = None

    @property
    def total(self) -> Decimal:
        return Decimal(self.order["Detail"]["total"]) if self.order else Decimal(0)


def mailbox_scenario(address: str | None) -> str | None:
    """``success``, ``bounce``, ``complaint``… for an SES mailbox-simulator address (``bounce+cus_1@…``), else None."""
    local, _, domain = (address or "").lower().partition("@")
    return local.split("+", 1)[0] if domain == "simulator.amazonses.com" else None


def reaches(channel: str, address: str | None) -> bool:
    """Whether a message on this channel to this address can make anyone buy: a mailbox-simulator address
    other than ``success@`` bounces, complains or is away; any other address is a person who reads it."""
    if address is None:
        return False
    return channel != "email" or mailbox_scenario(address) in (None, "success")


_MINUTE = timedelta(minutes=1)


class ResponseModel:
    """Deterministic shopper responses: every draw is a hash of the seed, the decision id and what is drawn, so a
    decision's response does not depend on the order messages are looked at, and a held-out decision has the
    response it *would* have had."""

    def __init__(self, effects: dict[str, dict[str, Effect]] | None = None, seed: int = 7) -> None:
        self.effects = TRUE_EFFECTS if effects is None else effects
        self.seed = seed

    def effect(self, campaign_id: str, variant: str | None) -> Effect:
        variants = self.effects.get(campaign_id, {})
        return variants.get(variant or ANY_VARIANT) or variants.get(ANY_VARIANT) or Effect()

    def _uniform(self, decision_id: str, what: str) -> float:
        digest = hashlib.sha256(f"{self.seed}|{decision_id}|{what}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def respond(self, exposure: Exposure) -> Response:
        """The response to ``exposure`` had it reached the shopper (callers realise it only for sent messages).

        Only e-mail is opened and clicked (SES reports both); a text or a notification can still make one buy.
        """
        if not reaches(exposure.channel, exposure.address):
            return Response()
        effect = self.effect(exposure.campaign_id, exposure.variant)
        draw = functools.partial(self._uniform, exposure.decision_id)
        order = None
        if draw("buy") < effect.purchase:
            # Truncated exponential by inversion: never later than within_hours.
            cap = 1 - math.exp(-effect.within_hours / effect.mean_delay_hours)
            delay = -effect.mean_delay_hours * math.log(1 - draw("delay") * cap)
            order = self._order(exposure, exposure.at + timedelta(hours=delay))
        if exposure.channel != "email":
            return Response(order=order)
        if order is not None:  # bought through the link, a few minutes after clicking it
            clicked_at = max(order["at"] - timedelta(minutes=2 + 20 * draw("browse")), exposure.at + _MINUTE)
            return Response(clicked_at - timedelta(seconds=30), clicked_at, order)
        if draw("open") >= effect.open:
            return Response()
        opened_at = exposure.at + _MINUTE + timedelta(hours=12 * draw("open-delay"))
        if draw("click") >= effect.click:
            return Response(opened_at)
        return Response(opened_at, opened_at + timedelta(seconds=30 + 1800 * draw("click-delay")))

    def _order(self, exposure: Exposure, at: datetime) -> dict[str, Any]:
        """The extra order: what the message promoted when the shop sells it (a cart's items), else a pick."""
        rng = random.Random(
            int.from_bytes(hashlib.sha256(f"{self.seed}|{exposure.decision_id}|items".encode()).digest()[:8], "big")
        )
        known = {sku: (sku, name, category, price) for sku, name, category, price in CATALOGUE}
        picked = [known[p] for p in dict.fromkeys(exposure.products) if p in known] or [rng.choice(CATALOGUE)]
        items: list[dict[str, Any]] = [
            {"product_id": sku, "name": name, "category": category, "quantity": 1, "unit_price": str(price)}
            for sku, name, category, price in picked
        ]
        total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
        detail = {
            "event_id": f"ev-resp-{exposure.decision_id}",
            "occurred_at": at.isoformat(),
            "order_id": f"resp-{exposure.decision_id}",
            "items": items,
            "total": str(total),
            "customer_id": exposure.customer_id,
            "nb": exposure.decision_id,  # the shopper came through the message's link; the shop kept its nb
        } | ({"coupon": exposure.coupon} if exposure.coupon else {})  # and typed the message's code at checkout
        return {
            "DetailType": "order.placed",
            "Source": "shop.web",
            "Detail": detail,
            "at": at,
            "response_to": exposure.decision_id,
        }


def linked_sessions(events: list[dict[str, Any]]) -> dict[str, str]:
    """Anonymous id -> customer id, for the sessions a ``customer.identified`` event linked to a customer.

    The pipeline merges a linked session into the customer's profile; a session never linked stays an
    anonymous profile forever (no consent, no address: it never receives a message, nor its orders credit one).
    """
    return {
        e["Detail"]["anonymous_id"]: e["Detail"]["customer_id"]
        for e in events
        if e["DetailType"] == "customer.identified"
        and not e.get("malformed")
        and e["Detail"].get("anonymous_id")
        and e["Detail"].get("customer_id")
    }


def owner(detail: dict[str, Any], linked: dict[str, str]) -> str | None:
    """The customer whose profile an event ends up in, or None (an anonymous session never linked)."""
    return detail.get("customer_id") or linked.get(detail.get("anonymous_id") or "")


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    at: datetime
    total: Decimal
    response_to: str | None = None
    """The decision whose message caused it; None for the orders the shopper places anyway."""


def shoppers_orders(population: Population) -> dict[str, list[PlacedOrder]]:
    """Each customer's own orders (the potential outcome without messages), as their profile receives them:
    malformed copies rejected, repeated events once, anonymous sessions only once linked."""
    linked = linked_sessions(population.events)
    orders: dict[str, dict[str, PlacedOrder]] = {}
    for e in population.events:
        detail = e["Detail"]
        if e["DetailType"] != "order.placed" or e.get("malformed"):
            continue
        customer = owner(detail, linked)
        if customer is not None:
            order = PlacedOrder(detail["order_id"], e["at"], Decimal(detail["total"]))
            orders.setdefault(customer, {}).setdefault(order.order_id, order)
    return {c: sorted(found.values(), key=lambda o: (o.at, o.order_id)) for c, found in orders.items()}


@dataclass(frozen=True)
class TrueEffect:
    """The true effect of one campaign on the population it decided for, in one run (see :func:`sample_truth`)."""

    recipients: int
    conversion: float
    """Sample average effect on conversion within the attribution window (a fraction)."""
    revenue_per_recipient: float
    """Sample average effect on attributed revenue per recipient (shop currency)."""
    conversion_without: float
    """Mean conversion had nobody been sent it (every decision's Y(0))."""
    revenue_without: float


def sample_truth(
    exposures: list[Exposure],
    orders: dict[str, list[PlacedOrder]],
    model: ResponseModel,
    horizon: datetime,
    window: timedelta = timedelta(days=7),
    spans: Mapping[str, timedelta] | None = None,
) -> dict[str, TrueEffect]:
    """The sample average treatment effect of each campaign on its decided population, per recipient.

    The estimand. A campaign's units are its **episodes**, sent or held out: a first message (step 0) and the
    follow-ups decided after it, exactly the "recipients" the attribution counters count (decide adds one per
    first ``send`` or ``holdout`` decision). Attribution credits an order to the latest episode of the
    campaign begun at or before it, until ``nextbest.core.attribution.episode_end`` (``window`` after the campaign's
    follow-up ``spans``); so an episode begun at t owns the orders placed in ``[t, min(t + span + window, t',
    horizon))``, where t' is the customer's next first message of the same campaign and ``horizon`` the moment
    the counters are read. Then, for each episode e,

    * Y_e(0) = 1 if the customer placed an order in e's window other than a response to e's messages (the
      orders they place anyway, and those other messages caused), and Y_e(1) = Y_e(0) or "a response to one
      of the messages e would have sent falls in e's window";
    * R_e(0) = the total of those other orders in the window, R_e(1) = R_e(0) + the responses' totals.

    The messages an episode "would have sent" are its first message, then each follow-up decided for it as
    long as no earlier message of the episode was opened, clicked or bought from before it (what cancels a
    follow-up in the pipeline). For a sent episode that is what happened; for a held-out one, whose
    "would have sent" follow-ups are logged regardless, it is what would have happened, drawn from the same
    responses (:class:`ResponseModel` draws a held-out decision's response as if it had been sent). The
    truth is the mean over the campaign's episodes of Y_e(1) - Y_e(0) (``conversion``) and R_e(1) - R_e(0)
    (``revenue_per_recipient``). The treatment-minus-holdout difference of the counters estimates exactly
    this, provided assignment is random (the hash of the customer key) and a message does not change which
    later *episodes* of the campaign begin.
    """
    by_owner: dict[tuple[str, str], list[Exposure]] = {}
    for e in exposures:
        by_owner.setdefault((e.customer_id, e.campaign_id), []).append(e)
    sums: dict[str, list[float]] = {}
    for (customer, campaign), decided in by_owner.items():
        decided.sort(key=lambda e: (e.at, e.decision_id))
        span = (spans or {}).get(campaign, timedelta(0))
        for episode in _episodes(decided, orders.get(customer, []), model, horizon, span + window):
            totals = sums.setdefault(campaign, [0, 0.0, 0.0, 0.0, 0.0])
            for i, value in enumerate(episode):
                totals[i] += value
    return {
        campaign: TrueEffect(int(n), conv / n, rev / n, without / n, rev0 / n)
        for campaign, (n, conv, rev, without, rev0) in sorted(sums.items())
    }


def _episodes(
    decided: list[Exposure], placed: list[PlacedOrder], model: ResponseModel, horizon: datetime, owns: timedelta
) -> Iterator[tuple[int, float, float, float, float]]:
    """Each episode of one customer's decisions for one campaign (in time order), as it adds to
    :func:`sample_truth`'s sums: (1, Y(1) - Y(0), R(1) - R(0), Y(0), R(0)). An episode owns the orders placed
    until ``owns`` (its follow-ups' span plus the attribution window) after it began."""
    firsts = [e for e in decided if e.step == 0]
    for k, first in enumerate(firsts):
        following = firsts[k + 1].at if k + 1 < len(firsts) else horizon
        end = min(first.at + owns, horizon, following)
        sent = _would_send(first, [e for e in decided if e.step > 0 and first.at <= e.at < following], model)
        own = {e.decision_id for e in decided if first.at <= e.at < following}
        inside = [o for o in placed if first.at <= o.at < end and o.response_to not in own]
        y0, r0 = bool(inside), float(sum((o.total for o in inside), Decimal(0)))
        gained = [r for r in (model.respond(e) for e in sent) if r.order and first.at <= r.order["at"] < end]
        yield 1, float(bool(gained) and not y0), float(sum((r.total for r in gained), Decimal(0))), float(y0), r0


def _would_send(first: Exposure, follow_ups: list[Exposure], model: ResponseModel) -> list[Exposure]:
    """The messages of an episode: its first, then each follow-up until an earlier one was engaged with before it."""
    sent = [first]
    for follow_up in follow_ups:
        if any(engaged <= follow_up.at for e in sent for engaged in _engagement(model.respond(e))):
            break
        sent.append(follow_up)
    return sent


def _engagement(response: Response) -> list[datetime]:
    """When the shopper opened, clicked or bought because of a message: each cancels its follow-up."""
    times = [t for t in (response.opened_at, response.clicked_at) if t is not None]
    return times + ([response.order["at"]] if response.order else [])


def contacts(population: Population) -> dict[str, tuple[str | None, str | None]]:
    """Each customer's e-mail address and phone number, as they identified themselves."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for e in population.events:
        detail = e["Detail"]
        if e["DetailType"] == "customer.identified" and not e.get("malformed") and detail.get("email"):
            found[detail["customer_id"]] = (detail["email"].lower(), detail.get("phone"))
    return found


# --- Whom a message moves: heterogeneous responses by action, for learning a targeting policy -------------------
#
# The shop above answers every message of a campaign alike. Here each shopper answers each action in their own way,
# as campaigns meet real people: a reminder moves those who would not have bought anyway, a discount moves a few
# more but is also given to those who would, a win-back message moves the lapsing, and shoppers who get many
# messages are annoyed by one more (they buy less). The truth is known for every decision and action, so a
# learned policy's true incremental revenue can be set beside its offline estimate (``make bench``).

POLICY_ACTIONS = ("cart-abandonment:reminder", "cart-abandonment:urgency", "win-back:default")
"""The messages that compete at each decision of :func:`policy_world` (and ``none``, sending nothing)."""
MARGIN, DISCOUNT = 0.4, 0.10


@dataclass(frozen=True)
class PolicyWorld:
    records: list[Any]
    """:class:`nextbest_lab.ope.LoggedDecision`, logged by a uniform random choice among the actions and ``none``."""
    incremental: Any
    """(decisions, actions) numpy array: each action's true expected revenue over sending nothing."""

    def true_value(self, probabilities: Any, actions: list[str]) -> float:
        """True incremental revenue per decision of a policy given as probabilities over ``actions`` (``none``'s
        gain is 0 by definition; a column for an action the world does not know is an error)."""
        import numpy as np

        index = {a: i for i, a in enumerate(POLICY_ACTIONS)}
        gains = np.column_stack(
            [self.incremental[:, index[a]] if a != "none" else 0 * self.incremental[:, 0] for a in actions]
        )
        return float((np.asarray(probabilities) * gains).sum(axis=1).mean())


def policy_world(decisions: int, seed: int = 7) -> PolicyWorld:
    """Randomised decisions among :data:`POLICY_ACTIONS` and ``none`` with their context, reward and the truth.

    Context: lapse risk and purchase propensity (what the models give decide), cart value, orders, segment,
    messages received in 30 days, channel; and ``scores``, each action's value by today's ranking (propensity x
    (value x margin - offer cost)). What shoppers do: they buy anyway with probability ``p0`` (half their
    propensity); a reminder adds 12% of the rest to those with a cart; the discount adds 16% but gives 10% off
    to everyone who buys; win-back adds up to 30% to the lapsing; and 80% of those with 4 or more messages in 30
    days buy 6 points less after one more.
    """
    import numpy as np

    from nextbest_lab.ope import LoggedDecision

    rng = np.random.default_rng(seed)
    n = decisions
    lapse, propensity = rng.beta(2, 3, n), rng.beta(1.5, 8, n)
    cart = np.where(rng.random(n) < 0.5, rng.uniform(20, 150, n).round(2), 0.0)
    orders, messages = rng.poisson(2, n), rng.poisson(2, n)
    segment = np.where(orders == 0, "new", np.where(lapse > 0.6, "lapsing", "regular"))
    channel = np.where(rng.random(n) < 0.8, "email", "sms")
    annoyed = rng.random(n) < np.where(messages >= 4, 0.8, 0.05)
    p0 = propensity / 2
    value = np.where(cart > 0, cart, 60.0)
    lift = (
        np.column_stack(
            [
                np.where(cart > 0, 0.12 * (1 - p0), 0.0),
                np.where(cart > 0, 0.16 * (1 - p0), 0.0),
                np.where(segment == "lapsing", 0.3 * lapse, 0.0),
            ]
        )
        - np.where(annoyed, 0.06, 0.0)[:, None]
    )
    bought = np.clip(p0[:, None] + lift, 0, 1)
    paid = value[:, None] * np.array([1.0, 1 - DISCOUNT, 1.0])
    incremental = bought * paid - (p0 * value)[:, None]
    choice = rng.integers(0, len(POLICY_ACTIONS) + 1, n)  # the last is none
    buys = rng.random(n)
    offer_cost = value * np.array([[0.0, DISCOUNT, 0.0]]).T
    scores = (propensity * (value * MARGIN - offer_cost)).T
    records = []
    for i in range(n):
        sent = int(choice[i]) < len(POLICY_ACTIONS)
        chance, pays = (bought[i, choice[i]], paid[i, choice[i]]) if sent else (p0[i], value[i])
        context = {
            "lapse_risk": round(float(lapse[i]), 4),
            "purchase_propensity": round(float(propensity[i]), 4),
            "cart_value": float(cart[i]),
            "orders": int(orders[i]),
            "messages_30d": int(messages[i]),
            "segment": str(segment[i]),
            "channel": str(channel[i]),
            "scores": {a: round(float(scores[i, k]), 4) for k, a in enumerate(POLICY_ACTIONS)},
        }
        records.append(
            LoggedDecision(
                decision_id=f"world-{seed}-{i:06d}",
                context=context,
                candidates=list(POLICY_ACTIONS),
                action=POLICY_ACTIONS[choice[i]] if sent else "none",
                propensity=1 / (len(POLICY_ACTIONS) + 1),
                reward=round(float(pays), 2) if buys[i] < chance else 0.0,
            )
        )
    return PolicyWorld(records, incremental)
