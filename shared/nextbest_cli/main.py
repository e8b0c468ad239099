"""``nextbest``: the developer and operator command line (never shipped to Lambda)."""

from __future__ import annotations

import argparse
import sys

from nextbest_cli.commands import (
    bench,
    campaigns,
    catalog,
    coupons,
    demo,
    evaluate_policy,
    explain,
    importing,
    models,
    policy,
    replay,
    report,
    schemas,
    tombstones,
    torture,
)

COMMANDS = (
    demo,
    torture,
    bench,
    replay,
    importing,
    models,
    policy,
    evaluate_policy,
    explain,
    report,
    campaigns,
    catalog,
    coupons,
    schemas,
    tombstones,
)
"""The command groups, in the order ``nextbest --help`` lists them."""


def main(argv: list[str] | None = None) -> int:
    """Run a command; a failure is one line on stderr and exit 2 (``errors``), its traceback only with ``--debug``."""
    parser = argparse.ArgumentParser(prog="nextbest", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="on an error, show its Python traceback")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except Exception as error:
        if args.debug:
            raise
        from nextbest_cli import errors

        print(f"nextbest {args.command}: {errors.describe(error)}", file=sys.stderr)
        return errors.EXIT


if __name__ == "__main__":
    sys.exit(main())
