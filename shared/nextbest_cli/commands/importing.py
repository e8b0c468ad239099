"""``nextbest import``: load a shop's existing customers, consents and orders into a deployed table, by ingest's rules.

See ``nextbest.ingest.history`` for what the rows become and why an import can be re-run or resumed safely.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STATE = Path(".nextbest/import")
KINDS = ("customers", "consents", "orders")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    found = commands.add_parser(
        "import",
        help="load existing customers, consents and orders (CSV or JSON lines) into a deployed table",
        description="Rows become the events ingest applies (identity merges, consent, orders counted once); "
        "history arms no trigger that is already due. Re-running or resuming an import changes nothing it did.",
    )
    found.add_argument("--table", required=True, help="the stack's table (output TableName)")
    found.add_argument("--secret", required=True, help="the erasure key's secret (output ErasureKey)")
    found.add_argument("--customers", type=Path, help="customer_id, email, phone, first_name, time_zone, signed_up_at")
    found.add_argument("--consents", type=Path, help="customer_id (or email/phone), channel, granted, at, source")
    found.add_argument(
        "--orders", type=Path, help="order_id, customer_id, at, total, currency; product_id, name, quantity, "
        "unit_price, category per line item (one row per item), or an items list in JSON lines"
    )  # fmt: skip
    found.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="the campaigns the stack runs")
    found.add_argument("--state", type=Path, default=STATE, help="where progress and rejected rows are written")
    found.add_argument("--chunk", type=int, default=100, help="customers per batch")
    found.add_argument("--workers", type=int, default=8, help="batches written at once")
    found.add_argument(
        "--shard", type=_shard, default=(0, 1), metavar="I/N",
        help="import the I-th of N shards (0 <= I < N): N imports side by side, one per shard, go N times faster",
    )  # fmt: skip
    found.set_defaults(run=run)


def _shard(text: str) -> tuple[int, int]:
    index, _, shards = text.partition("/")
    if not (index.isdigit() and shards.isdigit() and int(index) < int(shards)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give I/N, two whole numbers with I < N (0/4 to 3/4 for four shards)"
        )
    return int(index), int(shards)


def run(args: argparse.Namespace) -> int:
    from nextbest_lab.importing import import_files

    files = {kind: getattr(args, kind) for kind in KINDS if getattr(args, kind) is not None}
    done = import_files(
        args.table, args.secret, files, args.campaigns, args.state, args.chunk, args.workers, sys.stdout.isatty(),
        args.shard,
    )  # fmt: skip
    print(f"{done.customers} customers imported ({done.rate:,.0f}/s), {done.already_done} batches already done before")
    print(f"{done.rejected} rows rejected, each with its file, line and reason: {done.report}")
    return 0
