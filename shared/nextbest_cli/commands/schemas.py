"""``nextbest schemas``: the events' JSON Schemas, written for producers (see ``nextbest_cli.schemas``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schemas = commands.add_parser("schemas", help="write the events' JSON Schemas (producers' contract)")
    schemas.add_argument("--out", type=Path, default=None)
    schemas.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nextbest_cli.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return 0
