"""``nextbest replay``: dead-lettered messages back to their queue (see ``nextbest_cli.replay``)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = commands.add_parser("replay", help="move dead-lettered messages back to their queue after a fix")
    replay.add_argument("queue_url", help="URL of the dead-letter queue")
    replay.add_argument("--limit", type=int, default=None, help="move at most this many")
    replay.add_argument("--reason", default=None, help="only messages rejected for this reason")
    replay.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import boto3

    from nextbest_cli.replay import replay

    print(replay(boto3.client("sqs"), args.queue_url, args.limit, args.reason).describe())
    return 0
