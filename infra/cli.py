"""``nextbest``: the developer and operator command line (never shipped to Lambda)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nextbest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate a shop and run the whole pipeline on the local emulation")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=5)
    bench = commands.add_parser("bench", help="measure the budgets of DESIGN.md §8 and save them")
    bench.add_argument("--customers", type=int, default=500)
    bench.add_argument("--seed", type=int, default=7)
    replay = commands.add_parser("replay", help="move dead-lettered messages back to their queue after a fix")
    replay.add_argument("queue_url", help="URL of the dead-letter queue")
    replay.add_argument("--limit", type=int, default=None, help="move at most this many")
    replay.add_argument("--reason", default=None, help="only messages rejected for this reason")
    schemas = commands.add_parser("schemas", help="write the events' JSON Schemas (producers' contract)")
    schemas.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from infra.local import demo as demo_module

        summary = demo_module.run(customers=args.customers, seed=args.seed, days=args.days)
        _print_summary(summary)
        print(f"written to {demo_module.OUT / 'summary.json'}")
        return 0 if summary["optout_violations"] == 0 and summary["duplicate_sends"] == 0 else 1
    if args.command == "bench":
        from infra.local import bench as bench_module

        results = bench_module.run(customers=args.customers, seed=args.seed)
        _print_summary(results, title="nextbest bench")
        print(f"written to {bench_module.OUT / 'results.json'}")
        return 0
    if args.command == "replay":
        import boto3

        from infra.replay import replay as replay_messages

        print(replay_messages(boto3.client("sqs"), args.queue_url, args.limit, args.reason).describe())
        return 0
    if args.command == "schemas":
        from nextbest.schemas import write_schemas

        for path in write_schemas(args.out):
            print(path)
        return 0
    return 2


def _print_summary(summary: dict[str, object], title: str = "nextbest demo") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, json.dumps(value))
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
