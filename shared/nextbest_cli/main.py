"""``nextbest``: the developer and operator command line (never shipped to Lambda)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEMO = Path(".nextbest/demo")
"""Where ``make demo`` leaves its decision log, counters snapshot and report."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nextbest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate a shop and run the whole pipeline on the local emulation")
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=5)
    bench = commands.add_parser("bench", help="measure the budgets of DESIGN.md §8 and save them")
    bench.add_argument("--customers", type=int, default=500)
    bench.add_argument("--seed", type=int, default=7)
    replay = commands.add_parser("replay", help="move dead-lettered messages back to their queue after a fix")
    replay.add_argument("queue_url", help="URL of the dead-letter queue")
    replay.add_argument("--limit", type=int, default=None, help="move at most this many")
    replay.add_argument("--reason", default=None, help="only messages rejected for this reason")
    _models_parser(commands)
    _evaluate_policy_parser(commands)
    explain = commands.add_parser("explain", help="every decision made for a customer, and why")
    explain.add_argument("customer", help="customer id, e-mail, phone or identity key (c:…, e:…)")
    where = explain.add_mutually_exclusive_group()
    where.add_argument("--table", help="the deployed stack's table (output TableName); default: the last demo")
    where.add_argument("--log", type=Path, default=DEMO / "decisions.jsonl", help="a decision log")
    report = commands.add_parser("report", help="HTML report: campaigns, uplift with intervals, funnel, bandit")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--table", help="a deployed stack's table (the TableName output); reads its counters")
    source.add_argument("--snapshot", type=Path, default=DEMO / "counters.json", help="counters saved by the demo")
    report.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="the campaigns directory")
    report.add_argument("--out", type=Path, default=Path("nextbest-report.html"))
    campaigns = commands.add_parser("campaigns", help="campaigns as code")
    campaign_commands = campaigns.add_subparsers(dest="campaigns_command", required=True)
    approve = campaign_commands.add_parser("approve", help="record your approval (status, approver, date, digest)")
    approve.add_argument("files", type=Path, nargs="+")
    approve.add_argument("--by", required=True, help="who approves: recorded in the file")
    campaign_commands.add_parser("check", help="validate every campaign and the policy, list what is live")
    schemas = commands.add_parser("schemas", help="write the events' JSON Schemas (producers' contract)")
    schemas.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from nextbest_lab import demo as demo_module

        summary = demo_module.run(customers=args.customers, seed=args.seed, days=args.days)
        _print_summary(summary)
        print(f"written to {demo_module.OUT / 'summary.json'}")
        return 0 if summary["optout_violations"] == 0 and summary["duplicate_sends"] == 0 else 1
    if args.command == "bench":
        from nextbest_lab import bench as bench_module

        results = bench_module.run(customers=args.customers, seed=args.seed)
        _print_summary(results, title="nextbest bench")
        print(f"written to {bench_module.OUT / 'results.json'}")
        return 0
    if args.command == "replay":
        import boto3

        from nextbest_cli.replay import replay as replay_messages

        print(replay_messages(boto3.client("sqs"), args.queue_url, args.limit, args.reason).describe())
        return 0
    if args.command == "report":
        return _report(args)
    if args.command == "explain":
        from nextbest_cli import explain as explaining

        if args.table:
            key, decisions = explaining.from_table(args.table, args.customer)
        else:
            key, decisions = explaining.from_log(args.log, args.customer)
        print(explaining.explain(key, decisions))
        return 0 if decisions else 1
    if args.command == "campaigns":
        return _campaigns(args)
    if args.command == "models":
        return _models(args)
    if args.command == "evaluate-policy":
        return _evaluate_policy(args)
    if args.command == "schemas":
        from nextbest_cli.schemas import write_schemas

        for path in write_schemas(args.out):
            print(path)
        return 0
    return 2


def _campaigns(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nextbest.core.campaigns import approve, load_campaigns, load_policy

    root = Path(__file__).resolve().parents[2] / "campaigns"
    if args.campaigns_command == "approve":
        for path in args.files:
            campaign = approve(path, args.by, datetime.now(UTC).date())
            print(f"{campaign.id}: approved by {campaign.approved_by} ({campaign.approved_digest})")
        return 0
    policy = load_policy(root)
    for campaign in load_campaigns(root):
        note = f" — {campaign.review_note}" if campaign.review_note else ""
        print(f"{campaign.id:<22} {campaign.status:<9} {campaign.trigger.kind:<17} {','.join(campaign.channels)}{note}")
    print(f"policy: caps {policy.model_dump(mode='json')['caps']}, global control {policy.global_control_percent}%")
    return 0


def _models_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = commands.add_parser("models", help="train, score with and evaluate the bundled models")
    sub = models.add_subparsers(dest="models_command", required=True)
    train = sub.add_parser("train", help="train lapse/propensity and recommendations into a verified directory")
    train.add_argument("--transactions", type=Path, required=True, help="CSV: customer_id,timestamp,amount[,…]")
    train.add_argument("--as-of", required=True, help="YYYY-MM-DD; nothing on or after it is read")
    train.add_argument("--horizon-days", type=int, default=90, help="lapse = no purchase within this many days")
    train.add_argument("--products", type=Path, default=None, help="CSV with product_id (default: --transactions)")
    train.add_argument("--out", type=Path, required=True)
    score = sub.add_parser("score", help="customer_id,lapse_risk,purchase_propensity for customers seen before --as-of")
    score.add_argument("--model", type=Path, required=True)
    score.add_argument("--transactions", type=Path, required=True)
    score.add_argument("--as-of", required=True)
    score.add_argument("--out", type=Path, required=True)
    evaluate = sub.add_parser("evaluate", help="AUC, AP, calibration on a temporal split, next to baselines")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--transactions", type=Path)
    source.add_argument("--dataset", choices=["cdnow"], help="the real CDNOW sample (fetched by pinned hash)")
    evaluate.add_argument("--split", default=None, help="YYYY-MM-DD (cdnow: 1997-10-01, after 39 weeks)")
    evaluate.add_argument("--holdout-days", type=int, default=273)
    evaluate.add_argument("--json", type=Path, default=None, help="also write the full report here")
    export = sub.add_parser("export", help="write a bundled dataset as a transactions CSV")
    export.add_argument("dataset", choices=["cdnow", "simulator"])
    export.add_argument("--out", type=Path, required=True)
    sub.add_parser("default", help="retrain the committed default set in models/ (what `make models` runs)")


def _models(args: argparse.Namespace) -> int:
    from nextbest_lab import models

    if args.models_command == "train":
        manifest = models.train(
            args.transactions, models.parse_time(args.as_of), args.horizon_days, args.out, args.products
        )
        print(json.dumps({k: manifest[k] for k in ("training", "models", "files")}, indent=2))
        return 0
    if args.models_command == "score":
        count = models.score_file(args.model, args.transactions, models.parse_time(args.as_of), args.out)
        print(f"{count} customers scored into {args.out}")
        return 0
    if args.models_command == "evaluate":
        if args.dataset == "cdnow":
            transactions, split = models.cdnow_transactions(), args.split or "1997-10-01"
        else:
            transactions, split = models.read_transactions(args.transactions), args.split
            if split is None:
                raise SystemExit("--split is required with --transactions")
        report = models.evaluate(transactions, models.parse_time(split), args.holdout_days)
        _print_rows(report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    if args.models_command == "default":
        print(json.dumps(models.train_default()["files"], indent=2))
        return 0
    if args.models_command == "export":
        rows = models.cdnow_transactions() if args.dataset == "cdnow" else models.simulator_transactions()
        print(models.write_transactions(args.out, rows))
        return 0
    return 2


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


def _report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nextbest.core.campaigns import load_campaigns

    from nextbest_cli import report

    campaigns = load_campaigns(args.campaigns)
    if args.table:
        items, source = report.counter_items(args.table, [c.id for c in campaigns]), f"table {args.table}"
    else:
        items, source = report.load_snapshot(args.snapshot), f"the demo snapshot {args.snapshot}"
    stats = report.write(args.out, campaigns, items, source, datetime.now(UTC))
    print(f"wrote {args.out} ({len(stats)} campaigns)")
    return 0


def _evaluate_policy_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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


def _evaluate_policy(args: argparse.Namespace) -> int:
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
    _print_summary(evaluation.summary(), title=f"nextbest evaluate-policy {args.policy}")
    for note in evaluation.notes:
        print(f"note: {note}")
    if args.out:
        args.out.write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
    return 0


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
