"""``nextbest demo``: a simulated shop through the whole pipeline on the local emulation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

WIDTH = 100
"""The summary is written for this many columns at most (fewer on a narrower terminal)."""
CUSTOMERS, DAYS = 450, 7
"""The default size: the cart reminder's uplift gets its interval (100 recipients and 10 conversions in each arm,
with half of every audience held out) in about a minute on a 2-core machine; the week lets orders come in within the
attribution window."""

VIOLATIONS = ("optout_violations", "duplicate_sends", "quiet_hour_violations", "cap_violations")
"""What must be 0, from the independent audit of what moto sent: any other figure and the command exits 1."""

ACTIONS = {"send": "sent", "holdout": "held out", "defer": "deferred (quiet hours)", "none": "nothing worth sending"}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="simulate a shop and run the whole pipeline on the local emulation")
    demo.add_argument("--customers", type=int, default=CUSTOMERS)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=DAYS)
    demo.add_argument("--out", type=Path, default=None, help="where to leave its files (default: .nextbest/demo)")
    demo.add_argument("--cdk-out", type=Path, default=None, help="run this synthesized stack (default: synthesize it)")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exits non-zero if a message went to someone who had opted out, went twice, went during the customer's quiet
    hours or past a frequency cap (all counted from what moto recorded, against the simulator's truth)."""
    from nextbest_lab import demo
    from rich.console import Console

    out = args.out or demo.OUT
    summary = demo.run(customers=args.customers, seed=args.seed, days=args.days, out=out, cdk_out=args.cdk_out)
    console = Console()
    console.width = min(console.width, WIDTH)
    print_summary(console, summary, _shown(out))
    return verdict(console, summary, _shown(out))


def verdict(console: Console, summary: dict[str, Any], out: str) -> int:
    """0 when the audit found nothing and only the malformed events were dead-lettered, else 1 (and why)."""
    failed = summary["dlq_messages"] - summary["events_rejected"]
    if failed:  # only the malformed events belong in a dead-letter queue: anything else is a failure to look at
        console.print(
            f"\n  [bold red]{failed:,} messages other than the malformed events were dead-lettered[/]: a function "
            f"failed; its log is in {out}/logs (exit status 1)",
            highlight=False,
        )
    return 0 if all(summary[name] == 0 for name in VIOLATIONS) and not failed else 1


def _shown(path: Path) -> str:
    """A path as a reader at the shell types it: relative to where they are, if it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(console: Console, summary: dict[str, Any], out: str) -> None:
    """What a first run shows: what went through, what each campaign did, the audit, why some events were
    refused, and where to look next."""
    from rich.padding import Padding

    console.print(
        f"[bold]nextbest demo[/]: {summary['customers']:,} simulated shoppers over {summary['simulated_days']} days, "
        f"through the whole pipeline on moto ({summary['elapsed_s']:.0f} s)",
        highlight=False,
    )
    console.print(_flow(summary), highlight=False)
    console.print(_campaigns(summary), highlight=False)
    console.print(_measured(summary), highlight=False)
    console.print(_audit(summary), highlight=False)
    console.print(Padding(_rejected(summary), (1, 0, 0, 2)), highlight=False)
    console.print(
        f"\n  report   {out}/report.html (open it in a browser: uplift, funnel, bandit)\n"
        f"  explain  .venv/bin/nextbest explain {_a_customer(summary)}{_log_option(out)}"
        "  (every decision for one customer, and why)\n"
        f"  figures  {out}/summary.json",
        highlight=False,
        soft_wrap=False,
    )


def _flow(s: dict[str, Any]) -> str:
    actions = s["decisions_by_action"]
    by_action = ", ".join(f"{actions[a]:,} {label}" for a, label in ACTIONS.items() if actions.get(a))
    return "\n".join(
        [
            "",
            f"  events     {s['events_published']:,} published, {s['events_ingested']:,} ingested, "
            f"{s['events_rejected']:,} rejected (malformed on purpose: below)",
            f"  profiles   {s['profiles']:,} ({s['identity_merges']:,} identity merges: cookies, e-mails, accounts)",
            f"  decisions  {s['decisions']:,}: {by_action}",
            f"  messages   {s['emails_sent']:,} e-mails ({s['email_bounces']:,} bounced, {s['email_complaints']:,} "
            f"complaints), {s['sms_sent']:,} texts ({s['sms_fallbacks']:,} fallbacks after a bounce)",
            f"  shoppers   {s['email_opens']:,} opens, {s['email_clicks']:,} clicks, "
            f"{s['response_orders']:,} orders placed because of a message",
            "",
        ]
    )


def _campaigns(s: dict[str, Any]) -> Table:
    """Per campaign: sent and held out, the simulator's true effect, and what it did to this run's recipients."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1))
    table.add_column("  campaign", no_wrap=True)
    table.add_column("sent", justify="right")
    table.add_column("held out", justify="right")
    table.add_column("true effect on P(buy)", no_wrap=True)
    table.add_column("in this run: conversion", no_wrap=True)
    messages, effects = s["messages_by_campaign"], s["true_effects"]
    for campaign in sorted({key.split(":")[0] for key in messages} | set(effects)):
        effect = effects.get(campaign, {})
        truth = effect.get("purchase_probability", {}).items()
        table.add_row(
            f"  {campaign}",
            f"{messages.get(f'{campaign}:send', 0):,}",
            f"{messages.get(f'{campaign}:holdout', 0):,}",
            ", ".join(f"{'' if v == '*' else v + ' '}{p * 100:+g}%" for v, p in truth),
            _sample(effect.get("sample")),
        )
    return table


def _measured(s: dict[str, Any]) -> str:
    """What the report measured: each campaign's conversion uplift with its 95% interval, or what it waits for."""
    measured = s.get("measured_uplift") or {}
    if not measured:
        return ""
    floor = s.get("holdout_floor_percent") or 0
    lines = [
        "  measured from the holdouts, as report.html shows it (conversion uplift, 95% interval)"
        + (
            f";\n  the demo's stack holds out at least {floor:g}% of every audience (context holdoutFloorPercent)"
            if floor
            else ""
        )
        + ":"
    ]
    for campaign, found in sorted(measured.items()):
        if "estimate" in found:
            figure = f"{found['estimate'] * 100:+.1f} pts [{found['lower'] * 100:+.1f}, {found['upper'] * 100:+.1f}]"
        else:
            figure = f"not enough data yet ({found['waiting_for']})"
        lines.append(f"    {campaign:<20} {figure}")
    return "\n".join(lines)


def _sample(sample: dict[str, Any] | None) -> str:
    """The run's true effect on conversion, in points over the recipients' conversion without the message."""
    if not sample or not sample["recipients"]:
        return "no recipients"
    effect, base, n = sample["conversion"] * 100, sample["conversion_without"], sample["recipients"]
    return f"{effect:+.1f} pts on {base:.1%}, n={n:,}"


def _audit(s: dict[str, Any]) -> str:
    figures = [
        ("opt-out violations", "optout_violations"),
        ("duplicate sends", "duplicate_sends"),
        ("quiet-hour violations", "quiet_hour_violations"),
        ("cap violations", "cap_violations"),
    ]
    counts = "   ".join(f"{label} {s[key]}" for label, key in figures)
    verdict = "all 0: the guarantees held" if all(s[key] == 0 for _, key in figures) else "NOT ALL 0: exit status 1"
    return f"\n  audit of what moto sent, against the simulator's truth ({verdict}):\n  {counts}"


def _rejected(s: dict[str, Any]) -> str:
    reasons = ", ".join(f"{reason} {n}" for reason, n in s.get("rejected_by_reason", {}).items())
    return (
        f"{s['events_rejected']:,} events were refused on purpose: the simulated shop publishes about 0.5% "
        "malformed events (no identifier, an unreadable or future timestamp, an unknown field), as real "
        "producers do. Nothing invalid is dropped: each waits in the ingest dead-letter queue with its reason"
        + (f" ({reasons})" if reasons else "")
        + ", for `nextbest replay` once the producer is fixed."
    )


def _log_option(out: str) -> str:
    """``--log`` for ``explain`` when the demo wrote somewhere else than where ``explain`` reads by default."""
    return "" if out == ".nextbest/demo" else f" --log {out}/decisions.jsonl"


def _a_customer(s: dict[str, Any]) -> str:
    return str(s.get("example_customer") or "cus_00042")
