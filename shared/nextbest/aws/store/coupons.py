"""Coupon pools: the codes a shop uploads for a campaign, each given to exactly one message.

========================================  ==========  ==========================================================
pk                                        sk          what
========================================  ==========  ==========================================================
``cp:<campaign>#<shard>``                 ``CODE#…``  a code still in the pool (``coupons.shard_of`` spreads them)
``d:<decision id>``                       ``COUPON``  the code a decision claimed (``code``), with the decision's TTL
``cu:<campaign>#<code>``                  ``USED``    a code given out (``decision_id``): never given again, even
                                                      if the shop uploads it twice
========================================  ==========  ==========================================================

A claim is one transaction: delete the code from the pool (only if it is still there), write the decision's claim
(only if the decision has none) and mark the code used (only if it never was). Two deciders reaching for the same
code: one transaction wins, the other tries another code. A retried decision (a crash, a conflict on the profile)
finds its claim and renders the same code. The claim is made before the decision is committed: a decision that
then changes its mind (the profile changed, another campaign wins) leaves its code unused, not given twice.
Deleting claimed codes keeps a pool's partitions holding only what is left, so a claim reads a page of a few
items, however many codes were given before.

None of these items holds personal data (a code, a campaign, a decision id): erasing a customer deletes their
decisions and profile, and leaves the claim to expire with the decision's TTL and the used mark to keep the code
from being given again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import DECISION_RETENTION, Table, conflicted
from nextbest.core.coupons import POOL_SHARDS, CouponsGone, shard_of, shards_for

COUPON = "COUPON"
CODE = "CODE#"
USED = "USED"
CANDIDATES = 8
"""Codes read from a partition per attempt; a claim picks one at random, so concurrent claims rarely collide."""
EMPTY_TTL_S = 60.0
"""An empty pool is not read again for this long (seconds, per container): a shop's new upload is picked up
within a minute, and a campaign out of codes costs no reads meanwhile."""


class CouponItems(Table):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._empty_pools: dict[str, float] = {}
        """Campaigns whose pool was found empty, and when (``time.monotonic``)."""

    def claim_coupon(self, campaign_id: str, decision_id: str, at: datetime) -> str:
        """The code ``decision_id`` holds, claiming one from the campaign's pool if it holds none; raises
        CouponsGone when the pool has none left."""
        held = self._claimed(decision_id)
        if held is not None:
            return held
        empty = self._empty_pools
        if time.monotonic() - empty.get(campaign_id, -EMPTY_TTL_S) < EMPTY_TTL_S:
            raise CouponsGone(campaign_id)
        expires_at = {"N": str(int((at + DECISION_RETENTION).timestamp()))}
        for shard in shards_for(decision_id):
            for _ in range(3):  # a page whose codes were all taken meanwhile: read the partition again
                codes = self._pool_page(campaign_id, shard)
                if not codes:
                    break
                for code in random.sample(codes, len(codes)):
                    outcome = self._claim(campaign_id, shard, code, decision_id, expires_at)
                    if outcome == "claimed":
                        return code
                    if outcome == "held":  # the same decision, retried concurrently, claimed first
                        return self._claimed(decision_id) or code
        empty[campaign_id] = time.monotonic()
        raise CouponsGone(campaign_id)

    def _claimed(self, decision_id: str) -> str | None:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues={":pk": {"S": f"d:{decision_id}"}, ":sk": {"S": COUPON}},
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return str(items[0]["code"]["S"]) if items else None

    def _pool_page(self, campaign_id: str, shard: int) -> list[str]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"cp:{campaign_id}#{shard}"}},
            Limit=CANDIDATES,
        )
        return [item["sk"]["S"].removeprefix(CODE) for item in response.get("Items", [])]

    def _claim(self, campaign_id: str, shard: int, code: str, decision_id: str, expires_at: dict[str, str]) -> str:
        """``claimed``, ``held`` (the decision already holds a code), or ``taken`` (try another code)."""
        pool_key = {"pk": {"S": f"cp:{campaign_id}#{shard}"}, "sk": {"S": CODE + code}}
        claim = {"pk": {"S": f"d:{decision_id}"}, "sk": {"S": COUPON}, "code": {"S": code},
                 "campaign_id": {"S": campaign_id}, "expires_at": expires_at}  # fmt: skip
        used = {"pk": {"S": f"cu:{campaign_id}#{code}"}, "sk": {"S": USED}, "decision_id": {"S": decision_id}}
        absent = "attribute_not_exists(pk)"
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": pool_key,
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self.table, "Item": claim, "ConditionExpression": absent}},
                    {"Put": {"TableName": self.table, "Item": used, "ConditionExpression": absent}},
                ]
            )
        except ClientError as error:
            if conflicted(error):
                return "taken"
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]  # type: ignore[attr-defined]
            if aws.error_code(error) != "TransactionCanceledException" or len(reasons) != 3:
                raise
            if reasons[1] == "ConditionalCheckFailed":
                return "held"
            if reasons[2] == "ConditionalCheckFailed":  # given out before and uploaded again: never give it twice
                self.client.delete_item(TableName=self.table, Key=pool_key)
            return "taken"
        return "claimed"

    def upload_coupons(self, campaign_id: str, codes: Iterable[str]) -> tuple[int, int]:
        """Put codes in the campaign's pool; (added, skipped because already given out). Uploading the same file
        twice adds nothing twice: a code's item is keyed by the code."""
        unique = list(dict.fromkeys(codes))
        used: set[str] = set()
        for start in range(0, len(unique), 100):
            keys = [{"pk": {"S": f"cu:{campaign_id}#{c}"}, "sk": {"S": USED}} for c in unique[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ProjectionExpression": "pk"}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                used |= {i["pk"]["S"].split("#", 1)[1] for i in response["Responses"].get(self.table, [])}
                request = response.get("UnprocessedKeys") or {}
        fresh = [c for c in unique if c not in used]
        for start in range(0, len(fresh), 25):
            writes: list[dict[str, Any]] = [
                {"PutRequest": {"Item": {"pk": {"S": f"cp:{campaign_id}#{shard_of(c)}"}, "sk": {"S": CODE + c}}}}
                for c in fresh[start : start + 25]
            ]
            pending: dict[str, Any] = {self.table: writes}
            while pending:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        self._empty_pools.pop(campaign_id, None)
        return len(fresh), len(used)

    def coupons_left(self, campaign_id: str) -> int:
        """How many codes the campaign's pool still holds (a count per partition, no item read)."""
        left = 0
        for shard in range(POOL_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": f"cp:{campaign_id}#{shard}"}},
                "Select": "COUNT",
            }
            while True:
                page = self.client.query(**kwargs)
                left += int(page["Count"])
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return left

    def coupon_holder(self, campaign_id: str, code: str) -> str | None:
        """The decision a pool code was given to, if it was."""
        response = self.client.batch_get_item(
            RequestItems={self.table: {"Keys": [{"pk": {"S": f"cu:{campaign_id}#{code}"}, "sk": {"S": USED}}]}}
        )
        items = response["Responses"].get(self.table, [])
        return str(items[0]["decision_id"]["S"]) if items else None
