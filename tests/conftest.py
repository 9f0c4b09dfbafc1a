"""Fixtures shared by every test package."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coinbt.clock import ManualClock, SequentialIds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2024, 1, 1, tzinfo=UTC))


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds("t")
