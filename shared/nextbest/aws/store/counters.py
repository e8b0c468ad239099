"""Reading the campaigns' shared counters (they are added to inside other writes: ``nextbest.core.counters``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from nextbest.aws import clients as aws
from nextbest.aws.store.table import TRANSACTION_ATTEMPTS, Table
from nextbest.core.counters import Counter


class CounterItems(Table):
    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        """(sends, conversions) per variant of a campaign, from its counter items."""
        keys = [{"pk": {"S": f"s:{campaign_id}"}, "sk": {"S": f"VARIANT#{v}"}} for v in variants]
        counts = {v: (0, 0) for v in variants}
        request: dict[str, Any] = {self.table: {"Keys": keys}}
        while request:  # DynamoDB may return part of a batch (throttling, size): ask again for the rest
            response = self.client.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(self.table, []):
                variant = item["sk"]["S"].removeprefix("VARIANT#")
                sends, conversions = item.get("sends", {}).get("N", 0), item.get("conversions", {}).get("N", 0)
                counts[variant] = (int(sends), int(conversions))
            request = response.get("UnprocessedKeys") or {}
        return counts

    def lease(self, limit: Counter, want: Decimal) -> Decimal:
        """One ADD of ``want`` conditioned on room for all of it; when there is less, the refusal returns the count
        (``ReturnValuesOnConditionCheckFailure``: no read, no GetItem grant) and an ADD of what is left follows,
        conditioned the same way (another lease came in between: it is refused again and tries on what it read)."""
        assert limit.limit is not None
        for _ in range(TRANSACTION_ATTEMPTS):
            taking = Counter(limit.pk, limit.sk, want, limit.limit, limit.attribute, limit.expires_at)
            update = taking.update(self.table)["Update"] | {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
            try:
                self._retried(lambda: self.client.update_item(**update))  # noqa: B023 (called at once)
                return want
            except ClientError as error:
                if aws.error_code(error) != "ConditionalCheckFailedException":
                    raise
                item = error.response.get("Item", {})  # type: ignore[typeddict-item]
            want = limit.limit - Decimal(item.get(limit.attribute, {}).get("N", "0"))
            if want <= 0:
                return Decimal(0)
        return Decimal(0)  # the item kept moving: refuse this time, it is as good as full
