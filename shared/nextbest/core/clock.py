"""The one source of "now" for every stage.

Lambda code asks this module for the time instead of calling ``datetime.now`` so the local emulation can
run days of customer life in seconds by installing a :class:`ManualClock`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; used by the emulation and tests."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when < self._now:
            raise ValueError("a clock never runs backwards")
        self._now = when

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)


_clock: Clock = SystemClock()


def now() -> datetime:
    return _clock.now()


def install(clock: Clock) -> None:
    global _clock
    _clock = clock


def reset() -> None:
    install(SystemClock())


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")
