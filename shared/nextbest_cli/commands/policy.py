"""``nextbest policy``: export the deployed stack's decisions as a log, learn a targeting policy from it, gate,
evaluate and apply it, and pin or roll back the live one (``nextbest_lab.policy``, ``nextbest_lab.policy_log``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="learn a targeting policy from logged decisions; gate, evaluate, apply")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    learn = sub.add_parser(
        "learn", help="learn the incremental-reward policy and promote it only if it beats the live one"
    )
    learn.add_argument("--log", type=Path, required=True, help="JSON lines, one logged decision each")
    learn.add_argument("--out", type=Path, required=True, help="the policy directory (the live policy, if any)")
    learn.add_argument("--reward", choices=["revenue", "conversion"], default="revenue")
    learn.add_argument("--send-cost", type=float, default=0.0, help="what one message costs, in reward units")
    learn.add_argument("--floor", type=float, default=0.01, help="exploration: least probability of an open action")
    learn.add_argument("--holdout", type=Path, default=None, help="a held-out log for the gate (default: cross-fitted)")
    learn.add_argument(
        "--send-window-hours",
        type=float,
        default=12.0,
        help="deployed: how long decide may hold a message for the customer's best hour (0: send at once)",
    )
    learn.add_argument("--folds", type=int, default=5)
    learn.add_argument("--seed", type=int, default=0)
    learn.set_defaults(run=run_learn)
    evaluate = sub.add_parser("evaluate", help="DR and SNIPW of a policy against the logging policy and baselines")
    evaluate.add_argument("--log", type=Path, required=True)
    evaluate.add_argument("--policy", type=Path, required=True, help="a policy directory")
    evaluate.add_argument("--alpha", type=float, default=0.05)
    evaluate.add_argument("--json", type=Path, default=None, help="also write the evaluation here")
    evaluate.set_defaults(run=run_evaluate)
    apply = sub.add_parser("apply", help="the policy's probabilities over each logged decision's actions")
    apply.add_argument("--policy", type=Path, required=True)
    apply.add_argument("--log", type=Path, required=True)
    apply.add_argument("--out", type=Path, required=True, help="JSON lines: decision_id, action, probabilities")
    apply.add_argument(
        "--floor", type=float, default=0.0,
        help="exploration to add: least probability of each open action (default 0: the policy's own choice; "
        "decide explores with the floor learn was given)",
    )  # fmt: skip
    apply.set_defaults(run=run_apply)
    export = sub.add_parser(
        "export", help="the deployed stack's decisions whose outcome is known, as a log for learn (JSON lines)"
    )
    export.add_argument("--table", required=True, help="the stack's table (its TableName output)")
    export.add_argument("--out", type=Path, required=True, help="JSON lines, one logged decision each")
    export.add_argument("--campaigns", type=Path, default=Path("campaigns"), help="the campaigns deployed")
    export.add_argument("--horizon-days", type=float, default=7.0, help="orders this long after a decision count")
    export.set_defaults(run=run_export)
    promote = sub.add_parser(
        "promote", help="pin a policy version as the live one (default: the challenger the gate refused)"
    )
    promote.add_argument("--policy-dir", type=Path, required=True, help="the live policy's directory (learn --out)")
    promote.add_argument(
        "--from", dest="source", type=Path, default=None, help="the policy to pin (default: POLICY_DIR/challenger)"
    )
    promote.add_argument("--by", required=True, help="who pins it (recorded in the manifest)")
    promote.add_argument("--note", default="", help="why")
    promote.set_defaults(run=run_promote)
    rollback = sub.add_parser("rollback", help="make the previous live policy live again")
    rollback.add_argument("--policy-dir", type=Path, required=True)
    rollback.add_argument("--by", required=True, help="who rolls back (recorded in the manifest)")
    rollback.add_argument("--note", default="", help="why")
    rollback.set_defaults(run=run_rollback)


def run_learn(args: argparse.Namespace) -> int:
    from nextbest.decide.scoring import sha256_of
    from nextbest_lab import ope, policy

    training = {
        "log": {"name": args.log.name, "sha256": sha256_of(args.log)},
        "reward": args.reward,
        "send_cost": args.send_cost,
    }
    outcome = policy.learn_and_gate(
        ope.read_log(args.log),
        args.out,
        reward=args.reward,
        send_cost=args.send_cost,
        floor=args.floor,
        holdout=ope.read_log(args.holdout) if args.holdout else None,
        training=training,
        folds=args.folds,
        seed=args.seed,
        send_window_hours=args.send_window_hours,
    )
    selection, gate = outcome.manifest["selection"], outcome.manifest["gate"]
    _print_selection(selection)
    print(gate["reason"])
    if gate["promoted"]:
        print(f"promoted: {outcome.written_to} is the live policy")
    elif outcome.live is not None:
        print(f"not promoted: the live policy in {outcome.live} stays; the challenger is in {outcome.written_to}")
    else:
        print(f"not promoted: the logging policy stays live; the learned policy is in {outcome.written_to}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from nextbest_lab import ope, policy

    result = policy.compare(ope.read_log(args.log), policy.load(args.policy), alpha=args.alpha)
    _print_comparison(result, args.alpha)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from nextbest_lab import ope, policy

    learned = policy.load(args.policy)
    learned.floor = args.floor
    count = policy.apply_file(learned, ope.read_log(args.log), args.out)
    print(f"{count} decisions written to {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from nextbest.aws import clients
    from nextbest.core.campaigns import load_campaigns, load_policy
    from nextbest.core.clock import now
    from nextbest_lab import policy_log

    found = policy_log.Found.scan(clients.client("dynamodb"), args.table)
    records = policy_log.export(
        found, load_campaigns(args.campaigns), load_policy(args.campaigns), now(), timedelta(days=args.horizon_days)
    )
    count = policy_log.write(records, args.out)
    drawn = sum(1 for r in records if any("@" in c for c in r.candidates))
    print(f"{count} logged decisions written to {args.out} ({drawn} drawn by a live policy) of {len(found.decisions)}")
    print(f"next: nextbest policy learn --log {args.out} --out policy/")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from nextbest.core.clock import iso, now
    from nextbest_lab import policy

    source = args.source or args.policy_dir / "challenger"
    manifest = policy.promote(args.policy_dir, source, by=args.by, at=iso(now()), note=args.note)
    _print_live(args.policy_dir, manifest)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    from nextbest.core.clock import iso, now
    from nextbest_lab import policy

    manifest = policy.rollback(args.policy_dir, by=args.by, at=iso(now()), note=args.note)
    _print_live(args.policy_dir, manifest)
    return 0


def _print_live(directory: Path, manifest: dict[str, Any]) -> None:
    from nextbest_lab import policy

    live = manifest["live"]
    print(
        f"live policy in {directory}: version {policy.version_of(directory)} ({live['action']} by {live['pinned_by']})"
    )
    if (directory / "previous" / "manifest.json").is_file():
        print(f"previous: version {policy.version_of(directory / 'previous')} (`nextbest policy rollback` restores it)")
    print(f'decide uses it once deployed: make deploy ARGS="... -c policyDir={directory}"')


def _print_selection(selection: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"cross-fitted DR value per decision ({selection['records']} records); chosen: {selection['chosen']}"
    )
    for column in ("policy", "value", "below the best", "paired SE"):
        table.add_column(column)
    for kind, row in selection["cross_fitted"].items():
        table.add_row(kind, f"{row['value']:.6g}", f"{row['below_best']:.6g}", f"{row['paired_se']:.6g}")
    Console().print(table)


def _print_comparison(result: dict[str, Any], alpha: float) -> None:
    from rich.console import Console
    from rich.table import Table

    def show(triple: list[float] | None) -> str:
        return "" if triple is None else f"{triple[0]:.6g}  [{triple[1]:.6g}, {triple[2]:.6g}]"

    table = Table(title=f"{result['records']} decisions, reward {result['reward']}, {1 - alpha:.0%} intervals")
    for column in ("policy", "DR (on-policy mean for the log)", "SNIPW", "learned minus this (DR, paired)"):
        table.add_column(column)
    for name, row in result["policies"].items():
        table.add_row(
            name,
            show(row.get("dr") or row.get("on_policy")),
            show(row.get("snipw")),
            show(row.get("learned_minus_this_dr")),
        )
    Console().print(table)
