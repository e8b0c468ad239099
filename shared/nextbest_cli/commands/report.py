"""``nextbest report``: the campaigns' HTML report (see ``nextbest_lab.report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nextbest_cli.commands.common import DEMO


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="HTML report: campaigns, uplift with intervals, funnel, bandit")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--table", help="a deployed stack's table (the TableName output); reads its counters")
    source.add_argument("--snapshot", type=Path, default=DEMO / "counters.json", help="counters saved by the demo")
    report.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="the campaigns directory")
    report.add_argument(
        "--out", type=Path, default=Path(".nextbest/report.html"), help="where to write it (default: %(default)s)"
    )
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nextbest.core.campaigns import load_campaigns
    from nextbest_lab import report

    campaigns = load_campaigns(args.campaigns)
    if args.table:
        items, source = report.counter_items(args.table, [c.id for c in campaigns]), f"table {args.table}"
    else:
        items, source = report.load_snapshot(args.snapshot), f"the demo snapshot {args.snapshot}"
    stats = report.write(args.out, campaigns, items, source, datetime.now(UTC))
    print(f"wrote {args.out} ({len(stats)} campaigns)")
    return 0
