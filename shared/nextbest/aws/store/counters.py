"""Reading the campaigns' shared counters (they are added to inside other writes: ``nextbest.core.counters``)."""

from __future__ import annotations

from nextbest.aws.store.table import Table


class CounterItems(Table):
    def arm_counts(self, campaign_id: str, variants: list[str]) -> dict[str, tuple[int, int]]:
        """(sends, conversions) per variant of a campaign, from its counter items."""
        keys = [{"pk": {"S": f"s:{campaign_id}"}, "sk": {"S": f"VARIANT#{v}"}} for v in variants]
        response = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys}})
        counts = {v: (0, 0) for v in variants}
        for item in response["Responses"].get(self.table, []):
            variant = item["sk"]["S"].removeprefix("VARIANT#")
            counts[variant] = (int(item.get("sends", {}).get("N", 0)), int(item.get("conversions", {}).get("N", 0)))
        return counts
