"""CDK entry point (``cdk.json`` runs ``python -m infra.app``); tests and the emulation call ``build``.

Context (``cdk deploy -c key=value``), required: ``sender`` (the SES address e-mails come from), ``siteUrl`` (the
shop, which links in messages lead to). Optional: ``env`` (an environment name: the stack is ``nextbest-<env>``
and every fixed name in it starts with that, so staging and production can share an account), ``busName``
(default: the stack's name), ``pushPlatformApplicationArn`` (push through that SNS platform application),
``smsVia`` (``sns``, the default, or ``end-user-messaging`` for SMS delivery events in feedback), ``cartUrl`` (the
shop's cart page, where cart reminders link; default ``<siteUrl>/cart``).

There is no default for the required ones: a stack that mails from an address nobody chose, with links to a shop
that does not exist, is worse than one that refuses to synthesize (the emulation and the tests give theirs,
``infra.local.CONTEXT``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.constructs.shared import ContextError
from infra.nag import acknowledge
from infra.stack import NextbestStack

STACK_NAME = "nextbest"
ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "sender": "the address e-mails are sent from; SES mails it a verification link",
    "siteUrl": "your shop's address, where links in messages lead",
}
DEPLOY = 'make deploy ARGS="-c sender=news@yourshop.com -c siteUrl=https://yourshop.com [-c env=prod]"'
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
"""An environment name: it becomes part of the stack's name and of every fixed name (alarms: at most 255)."""


def stack_name(env: str | None) -> str:
    """``nextbest``, or ``nextbest-<env>``: the prefix of every fixed name in the stack (alarms, dashboard, bus,
    schedule group), which the constructs take from the stack's name."""
    if not env:
        return STACK_NAME
    if not ENV_NAME.fullmatch(env):
        raise ContextError(f"context env={env!r}: use 1-20 lower-case letters, digits or '-', starting with a letter")
    return f"{STACK_NAME}-{env}"


def required_context(app: cdk.App) -> dict[str, str]:
    """``sender`` and ``siteUrl``, refused with one message naming every missing or malformed one (and a malformed
    ``cartUrl``: links to the cart must lead to a page, as decide's settings require)."""
    given = {key: str(app.node.try_get_context(key) or "").strip() for key in REQUIRED}
    problems = [f"{key} ({why})" for key, why in REQUIRED.items() if not given[key]]
    if given["sender"] and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", given["sender"]):
        problems.append(f"sender={given['sender']!r} is not an e-mail address")
    if given["siteUrl"] and not re.match(r"https?://[^/\s]+", given["siteUrl"]):
        problems.append(f"siteUrl={given['siteUrl']!r} is not an http(s) URL")
    cart = str(app.node.try_get_context("cartUrl") or "").strip()
    if cart and not re.fullmatch(r"https?://[^\s<>\"']+", cart):
        problems.append(f"cartUrl={cart!r} is not an http(s) URL")
    if problems:
        raise ContextError(f"missing or invalid context: {'; '.join(problems)}. Deploy with {DEPLOY}")
    return given


def build(
    outdir: str | None = None, context: dict[str, str] | None = None, campaigns: Path | None = None
) -> tuple[cdk.App, NextbestStack]:
    app = cdk.App(outdir=outdir, context={"aws:cdk:enable-asset-metadata": True, **(context or {})})
    given = required_context(app)
    name = stack_name(app.node.try_get_context("env"))
    stack = NextbestStack(
        app,
        name,
        bus_name=str(app.node.try_get_context("busName") or name),
        sender=given["sender"],
        site_url=given["siteUrl"],
        campaigns=campaigns or ROOT / "campaigns",
        description="nextbest: next best message engine",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    acknowledge(stack)
    return app, stack


def synthesize(outdir: Path, context: dict[str, str], campaigns: Path | None = None) -> Path:
    """Synthesize the stack (cdk-nag included) so the emulation runs exactly what would deploy; ``campaigns``: another
    campaign set than the repository's (a test's)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    app, _ = build(str(outdir), context, campaigns)
    app.synth()
    return outdir


if __name__ == "__main__":
    try:
        application, _ = build()
    except ContextError as error:
        print(f"nextbest: {error}", file=sys.stderr)
        sys.exit(2)
    application.synth()
