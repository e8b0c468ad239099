from collections.abc import Iterator

import pytest
import urllib3  # noqa: F401  (imported before sockets are disabled: its import probes for IPv6 with one)
from nextbest.core import clock

from tests.conftest import T0


@pytest.fixture
def now() -> Iterator[clock.ManualClock]:
    """The handlers' clock, stopped at T0 (09:00 UTC, when the sample events happen)."""
    manual = clock.ManualClock(T0)
    clock.install(manual)
    yield manual
    clock.reset()
