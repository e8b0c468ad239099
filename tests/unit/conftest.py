from collections.abc import Iterator

import pytest
from nextbest.core import clock

from tests.conftest import T0


@pytest.fixture(autouse=True)
def _no_network(socket_disabled):
    """Unit tests never touch a network, not even moto's."""


@pytest.fixture
def now() -> Iterator[clock.ManualClock]:
    """The domain's clock, stopped at T0 (09:00 UTC, when the sample events happen)."""
    manual = clock.ManualClock(T0)
    clock.install(manual)
    yield manual
    clock.reset()
