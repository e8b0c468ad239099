"""Rendering a campaign's creative for one customer.

Templates are reviewed code, but they still run in Jinja's sandbox with HTML autoescaping so a product
name like ``<script>`` arrives as text. Undefined variables are errors, caught when campaigns are loaded.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from nextbest.core.campaigns import Campaign, CampaignError, Creative
from nextbest.core.catalog import Category, Shown
from nextbest.core.decision import Message
from nextbest.core.events import Channel

SMS_MAX_CHARS = 320
"""Two concatenated GSM segments; longer texts cost more and are cut by some carriers."""
PUSH_MAX_CHARS = 178
"""What iOS and Android show of a notification body before truncating it."""


@cache
def _environment(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@cache
def _text(source: str) -> Template:
    """Compiled once per container: compiling costs ~1 ms a template, rendering a few microseconds."""
    return _environment(False).from_string(source)


@cache
def _html(source: str) -> Template:
    return _environment(True).from_string(source)


def render(creative: Creative, channel: Channel, variables: dict[str, Any]) -> Message:
    if channel == "email":
        return Message(
            channel="email",
            subject=" ".join(_text(creative.subject).render(variables).split()),
            html=_html(creative.html).render(variables).strip(),
            text=_text(creative.text).render(variables).strip(),
        )
    if channel == "sms" and creative.sms:
        text = " ".join(_text(creative.sms).render(variables).split())
        return Message(channel="sms", text=text[:SMS_MAX_CHARS])
    if channel == "push" and creative.push:
        title = " ".join(_text(creative.subject).render(variables).split())
        body = " ".join(_text(creative.push).render(variables).split())
        return Message(channel="push", subject=title, text=body[:PUSH_MAX_CHARS])
    raise ValueError(f"the creative has nothing for {channel}")


def sample_variables(catalog: bool = False) -> dict[str, Any]:
    """What a real render receives, for checking templates when campaigns are loaded (``catalog``: of a campaign
    answering a catalog change, the only ones whose templates get a ``product``)."""
    tags = "utm_source=nextbest&utm_medium=email&utm_campaign=c&utm_content=v&nb=00000000-0000-0000-0000-000000000000"
    category = f"https://shop.example/c/skincare?{tags}"
    return {
        "first_name": "Ada",
        "items": [
            {
                "name": "Serum",
                "quantity": 1,
                "unit_price": Decimal("25.00"),
                "product_id": "p1",
                "category": "Skincare",
                "category_url": category,
                "url": f"https://shop.example/p/serum?{tags}",
                "image_url": "https://shop.example/i/serum.jpg",
                "price": Decimal("25.00"),
                "in_stock": True,
            }
        ],
        "cart_value": Decimal("25.00"),
        "currency": "USD",
        "link": f"https://shop.example/cart?{tags}",
        "cart_url": f"https://shop.example/cart?{tags}",
        "home_url": f"https://shop.example/?{tags}",
        "category": Category("Skincare", category),
        "recommendations": [
            Shown(p, name, f"https://shop.example/p/{p}?{tags}", None, Decimal("12.00"), "USD", "Skincare", category)
            for p, name in (("p2", "Mask"), ("p3", "Toner"))
        ],
        "discount_percent": Decimal(10),
        "coupon": "CART-0000000000000000",
        "step": 1,
        "event": event_properties(SAMPLE_CHANGE if catalog else {"plan": "annual"}),
        "product": Shown("p4", "Serum", f"https://shop.example/p/p4?{tags}", None, Decimal("32.00"), "USD")
        if catalog
        else None,
    }


SAMPLE_CHANGE = {
    "product_id": "p4",
    "category": "skincare",
    "currency": "USD",
    "old_price": 40.0,
    "new_price": 32.0,
    "drop_percent": 20.0,
    "interest": "cart",
}
"""A catalog change's properties (``nextbest.core.interest.CatalogChange.properties``), for checking templates."""


def sparse_variables(catalog: bool = False) -> dict[str, Any]:
    """What a real render receives for a customer the shop knows little of: no name, an empty cart, nothing to
    recommend, no category page. A template must guard what may be missing (``{% if category %}``), or the send
    fails: ``None.url`` is an undefined variable."""
    missing: dict[str, Any] = {"first_name": None, "items": [], "recommendations": [], "category": None}
    return sample_variables(catalog) | missing | {"cart_value": 0}


def event_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A custom event's properties as a template sees them (``{{ event.plan }}``): a property the event did not
    carry, or carried as null, renders as nothing instead of failing the send (guard it with a ``where`` condition
    when the message needs it)."""
    return defaultdict(str, {k: "" if v is None else v for k, v in properties.items()})


def check_creatives(campaigns: list[Campaign]) -> list[Campaign]:
    """Render every creative on every channel with the variables a real send gets, for a customer the shop knows well
    and for one it knows little of, so a template that would fail at send time (a typo, an unknown variable, a
    broken expression, an unguarded ``category.url``) fails the build, the check and decide's start instead. Returns
    the campaigns, or raises CampaignError naming the campaign, variant and channel."""
    for campaign in campaigns:
        for variant in campaign.variants:
            for channel in campaign.channels:
                try:
                    catalog = campaign.trigger.kind == "catalog"
                    for variables in (sample_variables(catalog), sparse_variables(catalog)):
                        render(variant.creative, channel, variables)
                except Exception as error:  # Jinja's syntax and undefined-variable errors, among others
                    raise CampaignError(f"{campaign.id}: variants.{variant.id}.{channel}: {error}") from None
    return campaigns
