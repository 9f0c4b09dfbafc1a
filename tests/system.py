"""Helpers to run the real system (SQLite file, worker processes) in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from coinbt.clock import ManualClock, SequentialIds
from coinbt.events import DataSpec, SyntheticSpec, TaskSpec
from coinbt.runtime import Config, System, open_system

OpenSystem = Callable[..., AbstractAsyncContextManager[System]]


def system_factory(tmp_path: Path, db: str | None = None) -> OpenSystem:
    """``async with open_system(workers=1, ...) as system``; every call shares one database and
    hands out fresh ids (``prefix`` differs per call), like restarts of one service -- or, with
    a PostgreSQL ``db``, like several processes on one database (open more than one at once)."""
    counter = iter(range(1, 1000))

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[System]:
        n = next(counter)
        config = Config(
            db=db if db is not None else tmp_path / "coinbt.db",
            data_dir=overrides.pop("data_dir", tmp_path if db is not None else None),
            heartbeat_s=overrides.pop("heartbeat_s", 0.2),
            workers=overrides.pop("workers", 1),
            clock=overrides.pop("clock", ManualClock(tick=timedelta(milliseconds=1))),
            ids=overrides.pop("ids", SequentialIds(f"r{n}")),
            shutdown_grace_s=overrides.pop("shutdown_grace_s", 0.0),
            **overrides,
        )
        async with open_system(config) as system:
            yield system

    return factory


def tiny(seed: int = 1, bars: int = 300, **fields: Any) -> TaskSpec:
    """A backtest that runs in well under a millisecond."""
    return TaskSpec(
        strategy=fields.pop("strategy", "sma_cross"),
        params=fields.pop("params", {"fast": 5, "slow": 20}),
        data=DataSpec(synthetic=SyntheticSpec(bars=bars, seed=seed)),
        **fields,
    )


def long(seed: int = 1, **fields: Any) -> TaskSpec:
    """A backtest that runs for seconds (10M synthetic bars): only ever cancelled or timed out."""
    return tiny(seed=seed, bars=10_000_000, **fields)


async def types_of(system: System, task_id: str) -> list[str]:
    return [e.type for e in await system.store.read_stream(task_id)]


async def wait_status(system: System, task_id: str, *statuses: str) -> str:
    """Wait (no sleeping: on the projector's progress) until the task has one of ``statuses``."""
    with anyio.fail_after(30):
        while True:
            seen = system.projector.position  # before reading: no advance can slip by
            status = (await system.task(task_id)).status
            if status in statuses:
                return status
            await system.projector.wait_for(seen + 1)
