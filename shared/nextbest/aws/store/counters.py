"""Reading the campaigns' shared counters (they are added to inside other writes: ``nextbest.core.counters``)."""

from __future__ import annotations

from typing import Any

from nextbest.aws.store.table import Table


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
