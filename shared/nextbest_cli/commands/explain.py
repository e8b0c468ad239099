"""``nextbest explain``: every decision made for a customer, and why (see ``nextbest_cli.explain``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nextbest_cli.commands.common import DEMO


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser("explain", help="every decision made for a customer, and why")
    explain.add_argument("customer", help="customer id, e-mail, phone or identity key (c:…, e:…)")
    where = explain.add_mutually_exclusive_group()
    where.add_argument("--table", help="the deployed stack's table (output TableName); default: the last demo")
    where.add_argument("--log", type=Path, default=DEMO / "decisions.jsonl", help="a decision log")
    explain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exits non-zero when no decision was made for the customer."""
    from nextbest_cli import explain

    if args.table:
        key, decisions = explain.from_table(args.table, args.customer)
    else:
        key, decisions = explain.from_log(args.log, args.customer)
    print(explain.explain(key, decisions))
    return 0 if decisions else 1
