"""Fixtures shared by every suite: an AWS-less environment, moto, and one synthesized stack per session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

EVENTS = Path(__file__).parent / "events"

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "POWERTOOLS_METRICS_NAMESPACE": "nextbest-tests",
}.items():
    os.environ[_name] = _value


def sample(name: str) -> dict[str, Any]:
    """A sample event (EventBridge envelope) from tests/events."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws
    from nextbest.aws import clients

    with mock_aws():
        clients.reset()
        yield
        clients.reset()


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack synthesized once (cdk-nag runs as part of synth; a finding fails it)."""
    from infra.local import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(cdk_out: Path) -> dict[str, Any]:
    return json.loads((cdk_out / "nextbest.template.json").read_text())


T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.fixture
def emulation(aws: None, cdk_out: Path, tmp_path: Path) -> Iterator[Any]:
    """The synthesized stack brought up on moto, on a manual clock starting at T0; on teardown, every DynamoDB
    request its functions made must be allowed by their roles in the template."""
    from nextbest.core import clock

    from infra.local.emulator import Emulation

    manual = clock.ManualClock(T0)
    clock.install(manual)
    try:
        emulation = Emulation(cdk_out, manual, tmp_path / "logs").deploy()
        yield emulation
        # moto does not enforce IAM: every DynamoDB request a function made must be one its role allows
        assert emulation.ungranted_requests() == {}
    finally:
        clock.reset()


@pytest.fixture
def response_lost(aws: None) -> Iterator[Any]:
    """``response_lost(service, operation, times=1)``: the operation takes effect but its answer is lost (a
    read timeout), through botocore's hooks in front of moto (``tests.faults``)."""
    from tests.faults import ResponseLost

    faults: list[ResponseLost] = []

    def inject(service: str, operation: str, times: int = 1) -> ResponseLost:
        faults.append(ResponseLost(service, operation, times))
        return faults[-1]

    yield inject
    for fault in faults:
        fault.remove()
