"""``nextbest tombstones migrate``: rewrite the unkeyed erasure tombstones of an older release in the keyed form."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tombstones = commands.add_parser("tombstones", help="erasure tombstones of a deployed stack")
    actions = tombstones.add_subparsers(dest="action", required=True)
    migrate = actions.add_parser(
        "migrate", help="rewrite unkeyed tombstones (written before the erasure key) keyed, and delete them"
    )
    migrate.add_argument("--table", required=True, help="the stack's table (output TableName)")
    migrate.add_argument("--secret", required=True, help="the erasure key's secret (output ErasureKey)")
    migrate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nextbest.aws import secrets
    from nextbest.aws.store import Store

    store = Store(args.table, erasure_key=lambda: secrets.erasure_key(args.secret))
    print(f"{store.migrate_tombstones()} unkeyed tombstones rewritten keyed")
    return 0
