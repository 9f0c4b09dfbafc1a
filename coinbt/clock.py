"""Injected time and identity.

Domain code never calls ``datetime.now()``, ``time.time()`` or ``uuid4()`` itself: it is handed a
:class:`Clock` and an :data:`IdFactory`, so tests can replay an exact history with
:class:`ManualClock` and :class:`SequentialIds`.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = (
    "Clock",
    "IdFactory",
    "ManualClock",
    "SequentialIds",
    "SystemClock",
    "from_epoch_us",
    "random_ids",
    "to_epoch_us",
)

IdFactory = Callable[[], str]
"""A zero-argument callable returning a new, unique, URL-safe id."""


class Clock(Protocol):
    """Wall time (UTC, for records) and monotonic time (for durations and timeouts)."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to. ``tick`` (if set) is added after every ``now()``."""

    def __init__(
        self,
        start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
        tick: timedelta = timedelta(0),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._mono = 0.0
        self._tick = tick

    def now(self) -> datetime:
        current = self._now
        if self._tick:
            self.advance(self._tick.total_seconds())
        return current

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a ManualClock cannot go backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class SequentialIds:
    """Ids ``prefix-000001``, ``prefix-000002``, ... for tests and reproducible runs."""

    def __init__(self, prefix: str = "t") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}-{next(self._counter):06d}"


def random_ids() -> str:
    """A random 128-bit id as 32 lowercase hex characters (the production id factory)."""
    return os.urandom(16).hex()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=64)
def from_epoch_us(us: int) -> datetime:
    """The aware UTC datetime ``us`` microseconds after the Unix epoch.

    Cached: events committed together share one timestamp, and building a datetime costs more
    than decoding a small event.
    """
    return _EPOCH + timedelta(microseconds=us)
