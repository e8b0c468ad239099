"""``nextbest torture``: the demo's shop on the local emulation with the faults AWS really produces, at several
rates, checked against the simulator's truth and what moto recorded as sent."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    torture = commands.add_parser(
        "torture", help="run the demo's shop with AWS faults injected at several rates and audit the outcome"
    )
    torture.add_argument("--customers", type=int, default=300)
    torture.add_argument("--days", type=int, default=5)
    torture.add_argument("--seed", type=int, default=7)
    torture.add_argument(
        "--rates", type=_rates, default=(0.0, 0.05, 0.2), help="comma-separated fault rates (default 0,0.05,0.2)"
    )
    torture.add_argument("--jobs", type=int, default=None, help="rates run at once, one process each (default: all)")
    torture.add_argument("--only", type=_kinds, default=None, help="comma-separated fault kinds (default: all)")
    torture.set_defaults(run=run)


def _rates(text: str) -> tuple[float, ...]:
    rates = tuple(float(r) for r in text.split(",") if r.strip())
    if not rates or any(not 0 <= r <= 1 for r in rates):
        raise argparse.ArgumentTypeError("rates are between 0 and 1")
    return rates


def _kinds(text: str) -> frozenset[str]:
    return frozenset(k.strip() for k in text.split(",") if k.strip())


def run(args: argparse.Namespace) -> int:
    """Exits non-zero if any rate lost, doubled, stranded or wrongly sent anything."""
    from nextbest_lab import torture
    from rich.console import Console
    from rich.table import Table

    jobs = args.jobs or len(args.rates)
    results = torture.run(
        customers=args.customers, days=args.days, rates=args.rates, seed=args.seed, jobs=jobs, kinds=args.only
    )
    table = Table(title=f"nextbest torture: {args.customers} shoppers, {args.days} days, seed {args.seed}")
    table.add_column("measure")
    for rate in results["rates"]:
        table.add_column(f"r={rate}", justify="right")
    for key, values in torture.rows(results):
        table.add_row(key, *values)
    Console().print(table)
    print(f"written to {torture.OUT / 'results.json'} ({results['elapsed_s']} s)")
    return 0 if torture.clean(results) else 1
