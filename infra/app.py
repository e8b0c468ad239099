"""CDK entry point (``cdk.json`` runs ``python -m infra.app``); tests and the emulation call ``build``.

Context (``cdk deploy -c key=value``): ``sender`` (verified SES address), ``busName``, ``siteUrl`` (links
in messages), ``pushPlatformApplicationArn`` (optional: push through that SNS platform application),
``smsVia`` (``sns``, the default, or ``end-user-messaging`` for SMS delivery events in feedback).
"""

from __future__ import annotations

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.nag import acknowledge
from infra.stack import NextbestStack

STACK_NAME = "nextbest"
ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "sender": "nextbest@example.com",
    "busName": "nextbest",
    "siteUrl": "https://shop.example",
}


def build(
    outdir: str | None = None, context: dict[str, str] | None = None, campaigns: Path | None = None
) -> tuple[cdk.App, NextbestStack]:
    app = cdk.App(outdir=outdir, context={"aws:cdk:enable-asset-metadata": True, **(context or {})})

    def setting(name: str) -> str:
        return str(app.node.try_get_context(name) or DEFAULTS[name])

    stack = NextbestStack(
        app,
        STACK_NAME,
        bus_name=setting("busName"),
        sender=setting("sender"),
        site_url=setting("siteUrl"),
        campaigns=campaigns or ROOT / "campaigns",
        description="nextbest: next best message engine",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    acknowledge(stack)
    return app, stack


def synthesize(outdir: Path) -> Path:
    """Synthesize the stack (cdk-nag included) so the emulation runs exactly what would deploy."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    app, _ = build(str(outdir))
    app.synth()
    return outdir


if __name__ == "__main__":
    build()[0].synth()
