"""``nextbest evaluate-policy``: another policy's value, estimated from logged decisions (``nextbest_lab.ope``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nextbest_cli.commands.common import print_summary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "evaluate-policy", help="estimate from logged decisions what another policy would earn (IPW, SNIPW, DR)"
    )
    evaluate.add_argument("--log", type=Path, required=True, help="JSON lines, one logged decision each")
    evaluate.add_argument("--policy", required=True, help="module:function, record -> {action: probability}")
    evaluate.add_argument(
        "--reward-model",
        default=None,
        help="module:function, record -> {action: expected reward} (DM and DR); default: cross-fitted group means",
    )
    evaluate.add_argument("--context-keys", default="", help="comma-separated context keys the default model uses")
    evaluate.add_argument("--bootstrap", type=int, default=0, help="percentile-bootstrap resamples (0: normal)")
    evaluate.add_argument("--alpha", type=float, default=0.05)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--out", type=Path, default=None, help="also write the evaluation here as JSON")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nextbest_lab import ope

    evaluation = ope.evaluate(
        ope.read_log(args.log),
        ope.load_callable(args.policy),
        ope.load_callable(args.reward_model) if args.reward_model else None,
        context_keys=[k for k in args.context_keys.split(",") if k],
        alpha=args.alpha,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    print_summary(evaluation.summary(), title=f"nextbest evaluate-policy {args.policy}")
    for note in evaluation.notes:
        print(f"note: {note}")
    if args.out:
        args.out.write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
    return 0
