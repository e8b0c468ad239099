"""``nextbest models``: train, score with and evaluate the bundled models (``nextbest_lab.models``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="train, score with and evaluate the bundled models")
    sub = models.add_subparsers(dest="models_command", required=True)
    train = sub.add_parser("train", help="train lapse/propensity and recommendations into a verified directory")
    train.add_argument("--transactions", type=Path, required=True, help="CSV: customer_id,timestamp,amount[,…]")
    train.add_argument("--as-of", required=True, help="YYYY-MM-DD; nothing on or after it is read")
    train.add_argument("--horizon-days", type=int, default=90, help="lapse = no purchase within this many days")
    train.add_argument("--products", type=Path, default=None, help="CSV with product_id (default: --transactions)")
    train.add_argument("--out", type=Path, required=True)
    train.set_defaults(run=run_train)
    score = sub.add_parser("score", help="customer_id,lapse_risk,purchase_propensity for customers seen before --as-of")
    score.add_argument("--model", type=Path, required=True)
    score.add_argument("--transactions", type=Path, required=True)
    score.add_argument("--as-of", required=True)
    score.add_argument("--out", type=Path, required=True)
    score.set_defaults(run=run_score)
    evaluate = sub.add_parser("evaluate", help="AUC, AP, calibration on a temporal split, next to baselines")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--transactions", type=Path)
    source.add_argument("--dataset", choices=["cdnow"], help="the real CDNOW sample (fetched by pinned hash)")
    evaluate.add_argument("--split", default=None, help="YYYY-MM-DD (cdnow: 1997-10-01, after 39 weeks)")
    evaluate.add_argument("--holdout-days", type=int, default=273)
    evaluate.add_argument(
        "--customer-splits",
        type=int,
        default=0,
        metavar="N",
        help="instead: lapse AUC on unseen customers, over N random halves (train on one, score the other)",
    )
    evaluate.add_argument("--json", type=Path, default=None, help="also write the full report here")
    evaluate.set_defaults(run=run_evaluate)
    export = sub.add_parser("export", help="write a bundled dataset as a transactions CSV")
    export.add_argument("dataset", choices=["cdnow", "simulator"])
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(run=run_export)
    default = sub.add_parser("default", help="retrain the committed default set in models/ (what `make models` runs)")
    default.set_defaults(run=run_default)


def run_train(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    manifest = models.train(
        args.transactions, models.parse_time(args.as_of), args.horizon_days, args.out, args.products
    )
    print(json.dumps({k: manifest[k] for k in ("training", "models", "files")}, indent=2))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    count = models.score_file(args.model, args.transactions, models.parse_time(args.as_of), args.out)
    print(f"{count} customers scored into {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    if args.dataset == "cdnow":
        transactions, split = models.cdnow_transactions(), args.split or "1997-10-01"
    else:
        transactions, split = models.read_transactions(args.transactions), args.split
        if split is None:
            raise SystemExit("--split is required with --transactions")
    if args.customer_splits > 0:
        report = models.generalisation(
            transactions, models.parse_time(split), args.holdout_days, splits=args.customer_splits
        )
        _print_generalisation(report)
    else:
        report = models.evaluate(transactions, models.parse_time(split), args.holdout_days)
        _print_rows(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    rows = models.cdnow_transactions() if args.dataset == "cdnow" else models.simulator_transactions()
    print(models.write_transactions(args.out, rows))
    return 0


def run_default(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    print(json.dumps(models.train_default()["files"], indent=2))
    return 0


def _print_rows(report: dict[str, object]) -> None:
    from nextbest_lab.models import table as rows
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"split {report['split']}, holdout {report['holdout_days']} days, {report['customers']} customers"
    )
    for column in ("target", "scorer", "AUC", "AP", "Brier"):
        table.add_column(column)
    for target, name, auc, ap, brier in rows(report):  # type: ignore[arg-type]
        table.add_row(target, name, f"{auc:.4f}", f"{ap:.4f}", "" if brier is None else f"{brier:.4f}")
    Console().print(table)


def _print_generalisation(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"lapse AUC on unseen customers: split {report['split']}, holdout {report['holdout_days']} days, "
        f"{report['splits']} random halves of {report['customers']} customers (seed {report['seed']})"
    )
    for column in ("scorer", "mean", "sd", "min", "max", "model minus it", "model wins"):
        table.add_column(column)
    for name, m in report["lapse_auc"].items():
        table.add_row(
            name,
            f"{m['mean']:.4f}",
            f"{m['sd']:.4f}",
            f"{m['min']:.4f}",
            f"{m['max']:.4f}",
            "" if name == "model" else f"{m['model_minus_this']:+.4f}",
            "" if name == "model" else f"{m['model_wins']:.0%}",
        )
    Console().print(table)
