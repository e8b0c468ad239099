"""``nextbest report``: one self-contained HTML page of what each campaign caused.

Everything comes from the counter items decide, deliver, feedback and ingest keep (``s:<campaign>``, see
``nextbest.core.attribution``), read with one Query per campaign from a deployed table, or from the snapshot of
them ``make demo`` saves. No history is rescanned, so the report costs the same on day 1 and day 400.

Uplift is the campaign's treatment against its randomised non-recipients (campaign holdout plus global
control), with the always-valid 95% confidence sequences of ``nextbest_lab.uplift``: the page can be refreshed
every day without the intervals losing their meaning. Charts are inline SVG drawn here; the page has no
script and loads nothing, so it can be mailed or archived as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from nextbest.core.attribution import CONTROLS
from nextbest.core.campaigns import Campaign
from nextbest.core.counters import COUPONS, STAGES
from nextbest.core.experiments import allocation

from nextbest_lab.uplift import ArmTotals, Interval, UpliftReport, uplift

FUNNEL = ("decided", "sent", "delivered", "opened", "clicked", "conversions")
"""The funnel the report draws, in order (bounces, complaints and failures are columns of their own)."""
PALETTE = ("#2f6fb0", "#e07b39", "#3a9b5c", "#a24ca8", "#c4a02b", "#5b6770")


@dataclass
class CampaignStats:
    campaign: Campaign
    arms: dict[str, ArmTotals] = field(default_factory=dict)
    funnel: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    """(variant, channel) -> stage -> count (plus ``conversions`` and ``revenue``)."""
    variants: dict[str, tuple[int, int]] = field(default_factory=dict)
    """variant -> (sends, conversions), Thompson sampling's counts."""
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    """yyyy-mm-dd -> variant -> sends."""
    coupons: dict[str, float] = field(default_factory=dict)
    """Codes ``issued`` and ``redeemed``, and the ``orders`` that used one with their ``revenue``
    (``nextbest.core.counters.COUPONS``)."""

    @property
    def control(self) -> ArmTotals:
        return sum((self.arms.get(a, ArmTotals()) for a in CONTROLS), ArmTotals())

    @property
    def treatment(self) -> ArmTotals:
        return self.arms.get("treatment", ArmTotals())

    @property
    def uplift(self) -> UpliftReport:
        return uplift(self.treatment, self.control)

    def waiting_for(self) -> str:
        """What the uplift still waits for (``nextbest_lab.uplift.uplift``'s defaults: 100 recipients and 10
        conversions per arm), so "not enough data" says how far there is to go."""
        missing = []
        for name, arm in (("treated", self.treatment), ("control", self.control)):
            needs = ((arm.recipients, 100, "recipients"), (arm.conversions, 10, "conversions"))
            short = [f"{n}/{need} {what}" for n, need, what in needs if n < need]
            if short:
                missing.append(f"{name} {', '.join(short)}")
        return "; ".join(missing) or "30 converters per arm for revenue"

    def stage(self, name: str) -> float:
        return sum(counts.get(name, 0) for counts in self.funnel.values())

    @property
    def has_coupons(self) -> bool:
        return self.campaign.offer.coupon != "none" or bool(self.coupons)

    def redemption_rate(self) -> float | None:
        """Codes redeemed per code issued."""
        issued = self.coupons.get("issued", 0)
        return self.coupons.get("redeemed", 0) / issued if issued else None

    def allocation(self) -> dict[str, float]:
        """What Thompson sampling would allocate now, from the counts it reads."""
        return allocation(self.campaign, self.variants)


def _number(value: Mapping[str, str]) -> float:
    return float(value["N"])


def collect(campaigns: Iterable[Campaign], items: Iterable[Mapping[str, Any]]) -> list[CampaignStats]:
    """The statistics of each campaign from its counter items (DynamoDB JSON, as Query returns them)."""
    stats = {c.id: CampaignStats(c) for c in campaigns}
    for item in items:
        found = stats.get(item["pk"]["S"].removeprefix("s:"))
        if found is None:
            continue
        kind, _, rest = item["sk"]["S"].partition("#")
        numbers = {k: _number(v) for k, v in item.items() if "N" in v}
        if kind == "ARM":
            found.arms[rest] = ArmTotals.from_counters(numbers)
        elif kind == "FUNNEL":
            variant, _, channel = rest.partition("#")
            found.funnel[(variant, channel)] = numbers
        elif kind == "VARIANT":
            found.variants[rest] = (int(numbers.get("sends", 0)), int(numbers.get("conversions", 0)))
        elif kind == "DAY":
            found.days[rest] = {k.removeprefix("sends#"): int(v) for k, v in numbers.items() if k.startswith("sends#")}
        elif kind == COUPONS:
            found.coupons = numbers
    return list(stats.values())


def counter_items(table: str, campaign_ids: Iterable[str], client: Any = None) -> list[dict[str, Any]]:
    """Every statistic of these campaigns in a deployed (or emulated) table, one item per counter as ``collect``
    reads them (the tally's shard items summed: ``nextbest.aws.store.CounterItems.counts``): one Query each."""
    from nextbest.aws.store import Store

    store = Store(table, client=client)
    return [
        {"pk": {"S": f"s:{campaign_id}"}, "sk": {"S": sk}}
        | {name: {"N": str(n)} for name, n in sorted(numbers.items())}
        for campaign_id in campaign_ids
        for sk, numbers in sorted(store.counts(campaign_id).items())
    ]


# --- formatting and charts -------------------------------------------------------------------------------


def points(value: float) -> str:
    """A difference of conversion rates, in percentage points."""
    return f"{value * 100:+.2f} pp"


def percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def money(value: float, signed: bool = False) -> str:
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def per_recipient(value: float) -> str:
    """A difference of revenue per recipient."""
    return money(value, signed=True)


def interval(found: Interval | None, fmt: Any) -> str:
    if found is None:
        return "not enough data yet"
    return f"{fmt(found.estimate)} [{fmt(found.lower)}, {fmt(found.upper)}]"


def forest(rows: list[tuple[str, Interval | None]], fmt: Any, width: int = 560) -> Markup:
    """Point estimates with their intervals, one row per campaign, around a zero line."""
    shown = [(name, i) for name, i in rows if i is not None]
    row_h, left, right = 26, 200, 20
    height = 30 + row_h * max(len(rows), 1)
    bounds = [v for _, i in shown for v in (i.lower, i.upper)] + [0.0]
    low, high = min(bounds), max(bounds)
    pad = (high - low) * 0.08 or 1e-6
    low, high = low - pad, high + pad

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * (width - left - right)

    parts = [f'<line x1="{x(0):.1f}" y1="8" x2="{x(0):.1f}" y2="{height - 18}" class="zero"/>']
    for n, (name, found) in enumerate(rows):
        y = 20 + n * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{_esc(name)}</text>')
        if found is None:
            parts.append(f'<text x="{left + 4}" y="{y + 4}" class="muted">not enough data yet</text>')
            continue
        colour = "#3a9b5c" if found.lower > 0 else "#c0392b" if found.upper < 0 else "#5b6770"
        parts.append(
            f'<line x1="{x(found.lower):.1f}" y1="{y}" x2="{x(found.upper):.1f}" y2="{y}" stroke="{colour}"'
            f' stroke-width="3"><title>{_esc(interval(found, fmt))}</title></line>'
            f'<circle cx="{x(found.estimate):.1f}" cy="{y}" r="5" fill="{colour}"/>'
        )
    if shown:
        parts.append(f'<text x="{x(low):.1f}" y="{height - 4}" class="axis">{_esc(fmt(low))}</text>')
        parts.append(
            f'<text x="{x(high):.1f}" y="{height - 4}" text-anchor="end" class="axis">{_esc(fmt(high))}</text>'
        )
    return _svg(width, height, parts)


def funnel_bars(stats: CampaignStats, width: int = 560) -> Markup:
    """Decided → sent → delivered → opened → clicked → converted, as bars scaled to the first."""
    values = [(name, stats.stage(name)) for name in FUNNEL]
    top = max(values[0][1], 1)
    row_h, left = 22, 90
    parts = []
    for n, (name, value) in enumerate(values):
        y = 6 + n * row_h
        w = (width - left - 80) * value / top
        parts.append(
            f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{name}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="16" fill="{PALETTE[0]}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 13}">{value:,.0f}</text>'
        )
    return _svg(width, 10 + row_h * len(values), parts)


def allocation_bars(stats: CampaignStats, width: int = 560) -> Markup:
    """Share of each variant's sends per day: how the bandit moved traffic."""
    days = sorted(stats.days)
    variants = [v.id for v in stats.campaign.variants]
    if not days:
        return Markup('<p class="muted">no sends yet</p>')
    left, bottom, height = 40, 34, 170
    slot = (width - left - 10) / len(days)
    parts = []
    for n, day in enumerate(days):
        total = sum(stats.days[day].values()) or 1
        y = 10.0
        for k, variant in enumerate(variants):
            share = stats.days[day].get(variant, 0) / total
            h = share * (height - bottom - 10)
            parts.append(
                f'<rect x="{left + n * slot + 2:.1f}" y="{y:.1f}" width="{slot - 4:.1f}" height="{h:.1f}"'
                f' fill="{PALETTE[k % len(PALETTE)]}"><title>{day} {_esc(variant)}: {share:.0%}'
                f" of {total}</title></rect>"
            )
            y += h
        parts.append(
            f'<text x="{left + n * slot + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle"'
            f' class="axis">{day[5:]}</text>'
        )
    for k, variant in enumerate(variants):
        parts.append(
            f'<rect x="{left + k * 110}" y="{height - 12}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
            f'<text x="{left + k * 110 + 14}" y="{height - 3}">{_esc(variant)}</text>'
        )
    parts.append(f'<text x="{left - 6}" y="18" text-anchor="end" class="axis">100%</text>')
    return _svg(width, height, parts)


def _svg(width: int, height: int, parts: list[str]) -> Markup:
    body = "".join(parts)
    return Markup(f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">{body}</svg>')


def _esc(text: str) -> str:
    return str(Markup.escape(text))


# --- the page ----------------------------------------------------------------------------------------------


def render(stats: list[CampaignStats], source: str, generated_at: datetime) -> str:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(points=points, percent=percent, money=money)
    totals = {stage: sum(s.stage(stage) for s in stats) for stage in (*STAGES, "conversions", "revenue")}
    rows = [(s.campaign.name, s.uplift) for s in stats]
    return environment.get_template("report.html.j2").render(
        stats=stats,
        source=source,
        generated_at=generated_at,
        totals=totals,
        interval=interval,
        points=points,
        per_recipient=per_recipient,
        conversion_forest=forest([(name, r.conversion.absolute) for name, r in rows], points),
        revenue_forest=forest([(name, r.revenue_per_recipient.absolute) for name, r in rows], per_recipient),
        funnel_bars=funnel_bars,
        allocation_bars=allocation_bars,
        funnel_stages=FUNNEL,
    )


def write(
    path: Path, campaigns: Iterable[Campaign], items: Iterable[Mapping[str, Any]], source: str, at: datetime
) -> list[CampaignStats]:
    stats = collect(campaigns, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(stats, source, at))
    return stats


def load_snapshot(path: Path) -> list[dict[str, Any]]:
    """Counter items saved by ``make demo`` (the emulation is gone when it ends)."""
    return list(json.loads(path.read_text()))
