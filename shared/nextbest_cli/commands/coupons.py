"""``nextbest coupons``: the codes behind campaigns' offers (``nextbest.core.coupons``).

``upload`` fills a pool campaign's pool from the shop's file, ``left`` counts what remains (an empty pool takes
its campaign out of every decision), ``verify`` checks a signed code as the shop's checkout does, ``holder`` names
the decision a pool code went to."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    coupons = commands.add_parser("coupons", help="coupon codes of campaigns' offers (pools, signed codes)")
    actions = coupons.add_subparsers(dest="action", required=True)
    upload = actions.add_parser("upload", help="put the shop's codes in a pool campaign's pool (each given once)")
    upload.add_argument("--table", required=True, help="the stack's table (output TableName)")
    upload.add_argument("--campaign", required=True, help='the campaign id ([offer] coupon = "pool")')
    upload.add_argument("--file", required=True, type=Path, help="CSV: a code per row, in the first column")
    upload.set_defaults(run=run_upload)
    left = actions.add_parser("left", help="how many codes a campaign's pool still holds")
    left.add_argument("--table", required=True, help="the stack's table (output TableName)")
    left.add_argument("--campaign", required=True, help="the campaign id")
    left.set_defaults(run=run_left)
    holder = actions.add_parser("holder", help="the decision a pool code was given to (nextbest explain shows it)")
    holder.add_argument("code")
    holder.add_argument("--table", required=True, help="the stack's table (output TableName)")
    holder.add_argument("--campaign", required=True, help="the campaign id")
    holder.set_defaults(run=run_holder)
    verify = actions.add_parser("verify", help="check a signed code as the checkout does; exit 1 if invalid")
    verify.add_argument("code")
    verify.add_argument("--secret", required=True, help="the coupon key's secret (output CouponKey)")
    verify.set_defaults(run=run_verify)


def read_codes(path: Path) -> list[str]:
    """The codes of a CSV file (first column; a header row ``code`` is skipped); raises ValueError naming the row of
    a code a checkout could not take."""
    from nextbest.core.coupons import valid_pool_code

    codes = []
    with path.open(newline="") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            if not row or not row[0].strip() or (number == 1 and row[0].strip().lower() == "code"):
                continue
            code = row[0].strip()
            if (why := valid_pool_code(code)) is not None:
                raise ValueError(f"{path}: row {number}: {why}")
            codes.append(code)
    if not codes:
        raise ValueError(f"{path}: no codes (one per row, in the first column)")
    return codes


def run_upload(args: argparse.Namespace) -> int:
    from nextbest.aws.store import Store

    codes = read_codes(args.file)
    store = Store(args.table)
    added, used = store.upload_coupons(args.campaign, codes)
    print(f"{added} codes added to {args.campaign}'s pool ({used} skipped: already given out); "
          f"{store.coupons_left(args.campaign)} left")  # fmt: skip
    return 0


def run_left(args: argparse.Namespace) -> int:
    from nextbest.aws.store import Store

    print(Store(args.table).coupons_left(args.campaign))
    return 0


def run_holder(args: argparse.Namespace) -> int:
    from nextbest.aws.store import Store

    holder = Store(args.table).coupon_holder(args.campaign, args.code)
    print(holder or f"{args.code} was not given out by {args.campaign}")
    return 0 if holder else 1


def run_verify(args: argparse.Namespace) -> int:
    from nextbest.aws import secrets
    from nextbest.core import clock, coupons

    expires = coupons.verify(args.code, secrets.signing_keys(args.secret), clock.now().date())
    print(f"valid until {expires.isoformat()}" if expires else "invalid or expired")
    return 0 if expires else 1
