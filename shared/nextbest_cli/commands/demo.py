"""``nextbest demo``: a simulated shop through the whole pipeline on the local emulation."""

from __future__ import annotations

import argparse

from nextbest_cli.commands.common import print_summary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="simulate a shop and run the whole pipeline on the local emulation")
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=5)
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Exits non-zero if a message went to someone who had opted out, went twice, went during the customer's quiet
    hours or past a frequency cap (all counted from what moto recorded, against the simulator's truth)."""
    from nextbest_lab import demo

    summary = demo.run(customers=args.customers, seed=args.seed, days=args.days)
    print_summary(summary)
    print(f"written to {demo.OUT / 'summary.json'}")
    violations = ("optout_violations", "duplicate_sends", "quiet_hour_violations", "cap_violations")
    return 0 if all(summary[name] == 0 for name in violations) else 1
