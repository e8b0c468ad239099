"""Every kind of item the table holds, whom it is keyed by, and what keeps their number from growing forever.

The key schema is spelt out in ``nextbest.aws.store.table`` (profiles, redirects, decisions, event markers,
tombstones, push message ids), ``nextbest.aws.store.catalog`` (products), ``nextbest.aws.store.interests`` (the
interest index), ``nextbest.aws.store.coupons`` (coupon pools) and ``nextbest.aws.store.counters`` (the
``s:<campaign>`` counter items: the tally's, and the caps and budgets decide leases from). Each class has a
*lifetime*:

* ``expiry`` — its items carry the TTL attribute ``expires_at``, and DynamoDB deletes them after it;
* ``bound`` — their number is bounded by something that does not grow with time or traffic (the people the shop
  knows, a campaign's variants and channels), stated in ``why``;
* ``none`` — neither: the class grows with every day or every event, for ever.

``make bench`` reports how many classes are ``none`` today (``item_classes_without_expiry``), and checks, on the
demo's table, that every item belongs to a class and that the items of an ``expiry`` class carry ``expires_at``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Lifetime = Literal["expiry", "bound", "none"]
TTL_ATTRIBUTE = "expires_at"


@dataclass(frozen=True)
class ItemClass:
    name: str
    key: str
    """The key's shape: ``pk`` / ``sk``."""
    shared: bool
    """Written for many customers (not keyed by one customer, one event or one message): a possible hot item."""
    lifetime: Lifetime
    why: str


ITEM_CLASSES: tuple[ItemClass, ...] = (
    ItemClass("profile", "c:|e:|p:|t:<id> / PROFILE, with doc", False, "bound",
              "one per person the shop knows (a customer id, an e-mail, a phone, a device); erasure deletes it"),
    ItemClass("anonymous_profile", "a:<cookie> / PROFILE, with doc", False, "expiry",
              "expires_at: 13 months after the last event of a cookie nobody identified (ANONYMOUS_RETENTION)"),
    ItemClass("redirect", "c:|e:|p:<id> / PROFILE, with canonical", False, "bound",
              "one per customer id, e-mail address or phone number a person gave the shop; erasure deletes them"),
    ItemClass("ephemeral_redirect", "a:|t:<id> / PROFILE, with canonical", False, "expiry",
              "expires_at: 13 months after a cookie or device token was linked (ANONYMOUS_RETENTION)"),
    ItemClass("decision", "d:<decision id> / DECISION", False, "expiry",
              "expires_at: 180 days after the decision (DECISION_RETENTION)"),
    ItemClass("decision_body", "d:<decision id> / BODY", False, "expiry",
              "expires_at: the decision's own (its rendered messages, written once with it)"),
    ItemClass("event_marker", "ev:<event id> / EVENT", False, "expiry",
              "expires_at: 7 days after the event (only for a profile with more than 256 events in a week)"),
    ItemClass("tombstone", "xk:<keyed hash of an identifier> / ERASED", False, "bound",
              "one per identifier of an erased person: grows with erasure requests, not with traffic"),
    ItemClass("push_message", "m:<provider message id> / MESSAGE", False, "expiry", "expires_at: 7 days"),
    ItemClass("product", "cat:<product id> / PRODUCT", False, "bound",
              "one per product the shop sells (in stock or out of stock); at most ~7 KB each (bounded fields)"),
    ItemClass("removed_product", "cat:<product id> / PRODUCT, with removed_at", False, "expiry",
              "expires_at: 30 days after the shop removed the product (REMOVED_RETENTION)"),
    ItemClass("interest", "int:<product id>#<shard> / <profile key>", False, "expiry",
              "expires_at: 30 days after the interest was recorded (INTEREST_TTL); erasure deletes those its profile "
              "lists"),
    ItemClass("counter_tally", "s:<campaign> / TALLY#<stream shard> or TALLY#TOTAL", True, "bound",
              "the tally's items (arms, funnel, variants, days): one per campaign and stream shard of the last two "
              "days (a shard closes within hours; older ones are folded into the campaign's TALLY#TOTAL)"),
    ItemClass("counter_budget", "s:<campaign> / BUDGET", True, "bound", "one per campaign"),
    ItemClass("counter_hour", "s:<campaign> / HOUR#<hour>", True, "expiry", "expires_at: 2 days after the hour"),
    ItemClass("coupon_code", "cp:<campaign>#<shard> / CODE#<code>", False, "bound",
              "one per code the shop uploaded and nobody was given yet (a claim deletes it; POOL_SHARDS partitions)"),
    ItemClass("coupon_claim", "d:<decision id> / COUPON", False, "expiry",
              "expires_at: the decision's own (the code it claimed, so a retried decision renders the same one)"),
    ItemClass("coupon_used", "cu:<campaign>#<code> / USED", False, "bound",
              "one per uploaded code given out: at most the codes the shop uploaded (never given twice)"),
    ItemClass("counter_day", "s:<campaign> / DAY#<date>", True, "expiry",
              "expires_at: 400 days after the day (DAILY_RETENTION); the tally folds a closed shard's daily counts "
              "here, the totals stay in TALLY#TOTAL"),
)  # fmt: skip

COUNTERS = {"TALLY": "counter_tally", "BUDGET": "counter_budget", "HOUR": "counter_hour", "DAY": "counter_day"}
SINGLE = {"DECISION": "decision", "BODY": "decision_body", "EVENT": "event_marker", "ERASED": "tombstone",
          "MESSAGE": "push_message", "COUPON": "coupon_claim", "USED": "coupon_used"}  # fmt: skip


class UnknownItem(ValueError):
    """An item the key schema does not name: a new kind of item needs a class here (and a lifetime)."""


def item_classes() -> dict[str, ItemClass]:
    """Every class of item, by name."""
    return {c.name: c for c in ITEM_CLASSES}


def without_expiry() -> list[str]:
    """The classes that neither expire nor are bounded (issue 14 asks for none)."""
    return [c.name for c in ITEM_CLASSES if c.lifetime == "none"]


def classify(pk: str, sk: str, attributes: Collection[str] = ()) -> ItemClass:
    """The class of an item, from its key (and, for a ``PROFILE`` item, whether it holds a profile or a redirect:
    without ``attributes``, a profile is assumed)."""
    classes = item_classes()
    if pk.startswith("int:"):
        return classes["interest"]
    if sk == "PROFILE":
        if "canonical" in attributes:
            return classes["ephemeral_redirect" if pk.startswith(("a:", "t:")) else "redirect"]
        return classes["anonymous_profile" if pk.startswith("a:") else "profile"]
    if sk == "PRODUCT":
        return classes["removed_product" if "removed_at" in attributes else "product"]
    if sk in SINGLE:
        return classes[SINGLE[sk]]
    if pk.startswith("cp:") and sk.startswith("CODE#"):
        return classes["coupon_code"]
    if pk.startswith("s:") and sk.split("#", 1)[0] in COUNTERS:
        return classes[COUNTERS[sk.split("#", 1)[0]]]
    raise UnknownItem(f"no item class for pk={pk[:2]}… sk={sk}")


def classify_item(item: Mapping[str, Mapping[str, Any]]) -> ItemClass:
    """The class of an item in DynamoDB's wire format (as a Scan returns it)."""
    return classify(item["pk"]["S"], item["sk"]["S"], item.keys())


def lacks_declared_expiry(item: Mapping[str, Mapping[str, Any]]) -> bool:
    """An item of a class that is meant to expire, without the TTL attribute."""
    return classify_item(item).lifetime == "expiry" and TTL_ATTRIBUTE not in item
