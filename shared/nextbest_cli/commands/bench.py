"""``nextbest bench``: import times, CPU, AWS requests, capacity units and cost per event, measured and saved."""

from __future__ import annotations

import argparse

from nextbest_cli.commands.common import print_summary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure import times, CPU, AWS requests, capacity units and cost per event, and the intervals' coverage; "
        "save them",
    )
    bench.add_argument("--customers", type=int, default=500)
    bench.add_argument("--seed", type=int, default=7)
    bench.add_argument(
        "--import-customers",
        type=int,
        default=100_000,
        help="customers `nextbest import` loads (about 12 ms each here)",
    )
    bench.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nextbest_lab import bench

    results = bench.run(customers=args.customers, seed=args.seed, import_customers=args.import_customers)
    print_summary(results, title="nextbest bench")
    print(f"written to {bench.OUT / 'results.json'}")
    return 0
