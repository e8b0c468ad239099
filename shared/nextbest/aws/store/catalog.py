"""The catalog's items: one per product (``cat:<product id>`` / ``PRODUCT``), written conditionally so the newest
state wins, read for decide in one BatchGetItem.

An item holds the product's JSON (``doc``, at most about 7 KB: every field is bounded in ``ProductUpdated``),
``rank``, the state's time and digest as one string that sorts as ``nextbest.core.catalog.newer`` orders them, and
``was``, the availability and price of the state it replaced (what ``nextbest.core.interest.catalog_change`` reads:
a redelivered event finds the change its first delivery made). A write reads the item first (one strongly
consistent read unit) and is conditioned on the rank it read, so the newest state wins and ``was`` is the state it
really replaced. A removed product keeps ``removed_at`` and expires ``REMOVED_RETENTION`` later (``expires_at``); the
others are bounded by the shop's catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import CONDITION_FAILED, TRANSACTION_ATTEMPTS, Table
from nextbest.core.catalog import REMOVED_RETENTION, Product, State, Stored
from nextbest.core.ports import Conflict

PRODUCT = "PRODUCT"
BATCH = 100
"""The most keys one BatchGetItem takes."""


def product_key(product_id: str) -> str:
    return f"cat:{product_id}"


def rank(product: Product) -> str:
    """Fixed-width UTC time to the microsecond, then the digest: compared as strings, as ``newer`` compares."""
    return product.version


def product_item(product: Product, previous: State | None = None) -> dict[str, Any]:
    item = {
        "pk": {"S": product_key(product.product_id)},
        "sk": {"S": PRODUCT},
        "rank": {"S": rank(product)},
        "doc": {"S": product.model_dump_json(exclude_none=True)},
    }
    if previous is not None:
        item["was"] = {"S": previous.model_dump_json(exclude_none=True)}
    if product.availability == "removed":
        item["removed_at"] = {"S": rank(product).split("|")[0]}
        item["expires_at"] = {"N": str(int((product.updated_at + REMOVED_RETENTION).timestamp()))}
    return item


class CatalogItems(Table):
    def put_product(self, product: Product) -> Stored:
        """Store ``product`` unless the catalog holds a newer state (or this one), with the state it replaces."""
        key = {"pk": {"S": product_key(product.product_id)}, "sk": {"S": PRODUCT}}
        for _ in range(TRANSACTION_ATTEMPTS):
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            if found is not None and found["rank"]["S"] >= rank(product):
                if found["rank"]["S"] > rank(product):
                    return Stored("outdated")
                was = found.get("was")
                return Stored("repeated", State.model_validate_json(was["S"]) if was else None)
            previous = Product.model_validate_json(found["doc"]["S"]).state if found is not None else None
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            if found is not None:  # unchanged since the read: what it replaces is what was read
                condition = {
                    "ConditionExpression": "#rank = :read",
                    "ExpressionAttributeNames": {"#rank": "rank"},
                    "ExpressionAttributeValues": {":read": found["rank"]},
                }
            try:
                item = product_item(product, previous)
                self._retried(partial(self.client.put_item, TableName=self.table, Item=item, **condition))
                return Stored("written", previous)
            except ClientError as error:
                if aws.error_code(error) not in CONDITION_FAILED:
                    raise  # else another state was stored since the read: read again
        raise Conflict(key["pk"]["S"], why=f"kept changing under {TRANSACTION_ATTEMPTS} attempts")

    def products(self, product_ids: Iterable[str]) -> dict[str, Product]:
        """The catalog's products among ``product_ids`` (unknown ones are absent), in one BatchGetItem per hundred.
        Eventually consistent, for half the read units: a change made within about a second of the read may not be
        seen yet, far less than the minutes a message then waits for its send."""
        wanted = sorted(set(product_ids))
        found: dict[str, Product] = {}
        for start in range(0, len(wanted), BATCH):
            keys = [{"pk": {"S": product_key(p)}, "sk": {"S": PRODUCT}} for p in wanted[start : start + BATCH]]
            request: dict[str, Any] = {self.table: {"Keys": keys}}
            while request:  # DynamoDB may return part of a batch (throttling, size): ask again for the rest
                response = self.client.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    product = Product.model_validate_json(item["doc"]["S"])
                    found[product.product_id] = product
                request = response.get("UnprocessedKeys") or {}
        return found
