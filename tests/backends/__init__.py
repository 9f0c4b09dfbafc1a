"""The contract suites every backend passes (``coinbt.backends``: memory, SQLite, PostgreSQL):
event store, read models, artifact outbox, dataset catalogue. Each suite opens its backend
through :func:`backend_factory`; ``sqlite/`` and ``postgres/`` hold what only one backend does.

A new backend is added to ``KINDS`` here (and to the event store suite's ``open_store``) and
must pass every suite."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from coinbt.backend import Backend, open_backend
from coinbt.backends.memory import MemoryDatabase
from coinbt.clock import ManualClock

OpenBackend = Callable[[], AbstractAsyncContextManager[Backend]]
Database = Path | str | MemoryDatabase

KINDS = ("memory", "sqlite", "postgres")


def backend_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> tuple[OpenBackend, Database]:
    """``async with open_backend() as backend`` (the same database on every call, like a
    restart or, on PostgreSQL, another process), and the database it opens."""
    kind = request.param
    db: Database
    if kind == "postgres":  # a fresh database on the session's server (skips if there is none)
        db = request.getfixturevalue("pg_dsn")
    elif kind == "memory":
        db = MemoryDatabase(clock)
    else:
        db = tmp_path / "c.db"
    data_dir = tmp_path / "data"

    def factory() -> AbstractAsyncContextManager[Backend]:
        return open_backend(db, data_dir, clock=clock, retry_s=0.1)

    return factory, db
