"""The catalog's items: one per product (``cat:<product id>`` / ``PRODUCT``), written conditionally so the newest
state wins, read for decide in one BatchGetItem.

An item holds the product's JSON (``doc``, at most about 7 KB: every field is bounded in ``ProductUpdated``) and
``rank``, the state's time and digest as one string that sorts as ``nextbest.core.catalog.newer`` orders them, so a
single conditional PutItem keeps the newest. A removed product keeps ``removed_at`` and expires
``REMOVED_RETENTION`` later (``expires_at``); the others are bounded by the shop's catalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import CONDITION_FAILED, Table
from nextbest.core.catalog import REMOVED_RETENTION, Product

PRODUCT = "PRODUCT"
BATCH = 100
"""The most keys one BatchGetItem takes."""


def product_key(product_id: str) -> str:
    return f"cat:{product_id}"


def rank(product: Product) -> str:
    """Fixed-width UTC time to the microsecond, then the digest: compared as strings, as ``newer`` compares."""
    return f"{product.updated_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}|{product.digest()}"


def product_item(product: Product) -> dict[str, Any]:
    item = {
        "pk": {"S": product_key(product.product_id)},
        "sk": {"S": PRODUCT},
        "rank": {"S": rank(product)},
        "doc": {"S": product.model_dump_json(exclude_none=True)},
    }
    if product.availability == "removed":
        item["removed_at"] = {"S": rank(product).split("|")[0]}
        item["expires_at"] = {"N": str(int((product.updated_at + REMOVED_RETENTION).timestamp()))}
    return item


class CatalogItems(Table):
    def put_product(self, product: Product) -> bool:
        """Store ``product`` unless the catalog holds a newer state (or this one): True if it was written."""
        try:
            self._retried(
                lambda: self.client.put_item(
                    TableName=self.table,
                    Item=product_item(product),
                    ConditionExpression="attribute_not_exists(pk) OR #rank < :rank",
                    ExpressionAttributeNames={"#rank": "rank"},
                    ExpressionAttributeValues={":rank": {"S": rank(product)}},
                )
            )
            return True
        except ClientError as error:
            if aws.error_code(error) in CONDITION_FAILED:
                return False
            raise

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
