"""``nextbest campaigns``: campaigns as code, checked and approved."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3] / "campaigns"
"""The repository's campaigns, which ``check`` reads."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    campaigns = commands.add_parser("campaigns", help="campaigns as code")
    sub = campaigns.add_subparsers(dest="campaigns_command", required=True)
    approve = sub.add_parser("approve", help="record your approval (status, approver, date, digest)")
    approve.add_argument("files", type=Path, nargs="+")
    approve.add_argument("--by", required=True, help="who approves: recorded in the file")
    approve.set_defaults(run=run_approve)
    check = sub.add_parser("check", help="validate every campaign and the policy, list what is live")
    check.add_argument("--dir", type=Path, default=ROOT, help="a directory of campaign files (default: campaigns/)")
    check.set_defaults(run=run_check)


def run_approve(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nextbest.core.campaigns import CampaignError

    from nextbest_cli.approvals import approve

    for path in args.files:
        try:
            campaign = approve(path, args.by, datetime.now(UTC).date())
        except CampaignError as error:
            print(f"not approved: {error}", file=sys.stderr)
            return 2
        print(f"{campaign.id}: approved by {campaign.approved_by} ({campaign.approved_digest})")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from nextbest.core.campaigns import Trigger, load_campaigns, load_policy
    from nextbest.core.messages import check_creatives

    policy = load_policy(args.dir)
    for campaign in check_creatives(load_campaigns(args.dir)):
        note = f" — {campaign.review_note}" if campaign.review_note else ""
        trigger = campaign.trigger.kind if isinstance(campaign.trigger, Trigger) else campaign.trigger.key
        print(f"{campaign.id:<22} {campaign.status:<9} {trigger:<17} {','.join(campaign.channels)}{note}")
    print(f"policy: caps {policy.model_dump(mode='json')['caps']}, global control {policy.global_control_percent}%")
    return 0
