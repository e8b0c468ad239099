"""A shopper population, as the events a shop would put on the bus over a few days.

Customers browse in anonymous sessions, log in (``customer.identified`` links the cookie to their id,
e-mail and phone), fill carts, buy or abandon, grant and sometimes withdraw consent. A few use SES
mailbox-simulator addresses that bounce or complain; a few events are malformed or sent twice, as real
producers do. The simulator also keeps the ground truth of consent, which the demo checks sends against.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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


@dataclass
class Truth:
    """What really happened to consent, per channel address: (when, granted) in time order."""

    consent: dict[tuple[str, str], list[tuple[datetime, bool]]] = field(default_factory=dict)

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


def simulate(customers: int = 2000, days: int = 5, seed: int = 7, start: datetime | None = None) -> Population:
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    end = start + timedelta(days=days)
    truth = Truth()
    events: list[dict[str, Any]] = []
    counter = 0

    def emit(kind: str, at: datetime, **detail: Any) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        body = {"event_id": f"ev-{seed}-{counter:07d}", "occurred_at": at.isoformat(), **detail}
        entry = {"DetailType": kind, "Source": "shop.web", "Detail": body, "at": at}
        events.append(entry)
        return entry

    for n in range(customers):
        cid = f"cus_{n:05d}"
        roll = rng.random()
        scenario = "bounce" if roll < 0.06 else "complaint" if roll < 0.075 else "success"
        email = f"{scenario}+{cid}@simulator.amazonses.com"
        phone = f"+1415{n:07d}" if rng.random() < 0.55 else None
        consents_email = rng.random() < 0.85
        consents_sms = phone is not None and rng.random() < 0.7
        first_seen = start + timedelta(minutes=rng.uniform(0, days * 24 * 60 * 0.8))
        sessions = 1 + _poisson(rng, 1.3)
        identified = False
        if rng.random() < 0.4:  # a customer with a purchase history from before the simulated days
            joined = start - timedelta(days=rng.uniform(60, 400))
            profile = {"customer_id": cid, "email": email, "first_name": f"Shopper{n}", "time_zone": "America/New_York"}
            emit("customer.identified", joined, **profile, **({"phone": phone} if phone else {}))
            emit("consent.updated", joined, customer_id=cid, channel="email", granted=consents_email, source="signup")
            truth.record("email", email, joined, consents_email)
            if phone:
                emit("consent.updated", joined, customer_id=cid, channel="sms", granted=consents_sms, source="signup")
                truth.record("sms", phone, joined, consents_sms)
            rhythm = rng.uniform(15, 90)  # this customer's own days between orders
            when = joined + timedelta(days=rng.uniform(0, 10))
            for k in range(20):
                if when >= start:
                    break
                items = [_line(rng) for _ in range(1 + _poisson(rng, 0.4))]
                total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
                emit("order.placed", when, order_id=f"old-{n:05d}-{k}", items=items, total=str(total), customer_id=cid)
                when += timedelta(days=rhythm * rng.uniform(0.7, 1.3) * (1 if rng.random() < 0.85 else 4))
            identified = True
        at = first_seen
        for s in range(sessions):
            anon = f"anon-{n:05d}-{s}"
            logged_in = identified or rng.random() < 0.75
            ids = {"anonymous_id": anon}
            if s > 0 and identified and rng.random() < 0.5:
                ids["customer_id"] = cid  # returning customer, already logged in
            for _ in range(1 + _poisson(rng, 1.8)):
                sku, _name, category, price = rng.choice(CATALOGUE)
                emit("product.viewed", at, product_id=sku, category=category, price=str(price), **ids)
                at += timedelta(seconds=rng.uniform(20, 240))
            if logged_in and not identified:
                detail = {
                    "customer_id": cid,
                    "anonymous_id": anon,
                    "email": email,
                    "first_name": f"Shopper{n}",
                    "time_zone": "America/New_York",
                }
                if phone:
                    detail["phone"] = phone
                emit("customer.identified", at, **detail)
                emit("consent.updated", at, customer_id=cid, channel="email", granted=consents_email, source="signup")
                truth.record("email", email, at, consents_email)
                if phone:
                    emit("consent.updated", at, customer_id=cid, channel="sms", granted=consents_sms, source="signup")
                    truth.record("sms", phone, at, consents_sms)
                identified = True
                ids = {"anonymous_id": anon, "customer_id": cid}
            elif logged_in:
                emit("customer.identified", at, customer_id=cid, anonymous_id=anon)
                ids = {"anonymous_id": anon, "customer_id": cid}
            if rng.random() < 0.55:
                items = [_line(rng) for _ in range(1 + _poisson(rng, 0.6))]
                emit("cart.updated", at, items=items, **ids)
                at += timedelta(minutes=rng.uniform(1, 20))
                if rng.random() < 0.35:
                    total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
                    emit("order.placed", at, order_id=f"ord-{n:05d}-{s}", items=items, total=str(total), **ids)
                    emit("cart.updated", at + timedelta(seconds=5), items=[], **ids)
            if identified and rng.random() < 0.04:
                channel = "sms" if phone and rng.random() < 0.3 else "email"
                emit("consent.updated", at, customer_id=cid, channel=channel, granted=False, source="preference_center")
                truth.record(channel, phone if channel == "sms" and phone else email, at, False)
            at += timedelta(hours=rng.uniform(4, 40))
            if at >= end:
                break

    events = [e for e in events if e["at"] < end]
    _producer_mistakes(rng, events, end)
    events.sort(key=lambda e: e["at"])
    return Population(events=events, truth=truth, customers=customers, start=start, end=end)


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
