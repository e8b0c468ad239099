"""The stack synthesized a second time with every optional feature on, for the tests of grants and policies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

OPTIONAL_FEATURES = {
    "smsVia": "end-user-messaging",
    "pushPlatformApplicationArn": "arn:aws:sns:us-east-1:123456789012:app/GCM/x",
    "sesMaxSendRate": "1000",
    "cartUrl": "https://shop.example/checkout/basket",
}
"""Texts through End User Messaging SMS, push through an SNS platform application (``infra.app``), and an SES
account allowed 1,000 e-mails a second (``infra.constructs.deliver``), a cart page that is not ``<siteUrl>/cart``."""


@pytest.fixture(scope="session")
def cdk_out_with_options(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.local import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out.options"), OPTIONAL_FEATURES)


@pytest.fixture(scope="session", params=["defaults", "optional features"])
def synthesized(request: pytest.FixtureRequest) -> Path:
    """The cloud assembly as deployed by default, then with every optional feature on."""
    return Path(request.getfixturevalue("cdk_out" if request.param == "defaults" else "cdk_out_with_options"))


@pytest.fixture(scope="session")
def each_template(synthesized: Path) -> dict[str, Any]:
    return json.loads((synthesized / "nextbest.template.json").read_text())
