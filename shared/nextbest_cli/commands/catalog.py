"""``nextbest catalog import``: load the shop's products from a CSV or JSON Lines file into the table, as
``product.updated`` events would (``nextbest.core.catalog``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REJECTED_EXIT = 1
"""The exit status when some rows were refused (the others are imported): a script importing a nightly export sees
it, unlike the one-line failure of a command that could not run at all (2, ``nextbest_cli.errors``)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = commands.add_parser("catalog", help="the shop's products in a deployed stack's table")
    actions = catalog.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "import",
        help="import products from a CSV file (header: product_id,name,url,image_url,price,currency,category,"
        "category_url,availability) or a JSON Lines file (.jsonl, one object a line with those fields); rejected rows "
        "are listed as file: row N: reason and the command exits 1",
    )
    load.add_argument("--table", required=True, help="the stack's table (output TableName)")
    load.add_argument("--file", required=True, type=Path, help="the CSV or .jsonl file")
    load.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nextbest.aws.store import Store
    from nextbest.core import clock
    from nextbest.core.catalog import read_import

    try:
        text = args.file.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV export may start with a BOM
    except UnicodeDecodeError:
        raise ValueError(f"{args.file}: not UTF-8 text (export the file as UTF-8 CSV, or JSON Lines)") from None
    products, rejected = read_import(text, str(args.file), clock.now())
    store = Store(args.table)
    written = sum(store.put_product(product).outcome == "written" for product in products)
    for row in rejected:
        print(f"nextbest catalog import: {row}", file=sys.stderr)
    print(
        f"{written} products imported, {len(products) - written} unchanged (the table holds this state or a newer "
        f"one), {len(rejected)} rows rejected"
    )
    return REJECTED_EXIT if rejected else 0
