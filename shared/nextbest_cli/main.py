"""``nextbest``: the developer and operator command line (never shipped to Lambda)."""

from __future__ import annotations

import argparse
import sys

from nextbest_cli.commands import (
    bench,
    campaigns,
    demo,
    evaluate_policy,
    explain,
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
    models,
    policy,
    evaluate_policy,
    explain,
    report,
    campaigns,
    schemas,
    tombstones,
)
"""The command groups, in the order ``nextbest --help`` lists them."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nextbest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
