"""The one DynamoDB table behind nextbest, one module per kind of access (see ``table`` for the key schema)."""

from __future__ import annotations

from nextbest.aws.store.catalog import CatalogItems
from nextbest.aws.store.counters import CounterItems
from nextbest.aws.store.coupons import CouponItems
from nextbest.aws.store.decisions import DecisionItems
from nextbest.aws.store.due import DueIndex
from nextbest.aws.store.interests import InterestItems
from nextbest.aws.store.profiles import ProfileItems
from nextbest.aws.store.table import BY_CANONICAL, BY_CUSTOMER, BY_DUE, BY_SWEEP

__all__ = ["BY_CANONICAL", "BY_CUSTOMER", "BY_DUE", "BY_SWEEP", "Store"]


class Store(ProfileItems, DecisionItems, CounterItems, DueIndex, CatalogItems, CouponItems, InterestItems):
    """Every kind of access to the table; each step is typed on the interfaces it uses (``nextbest.core.ports``)."""
