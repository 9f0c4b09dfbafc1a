"""The service's storage backends for contract tests: every interface (read models, artifact
outbox, dataset catalogue) opened on SQLite or on PostgreSQL, through ``open_backend``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from coinbt.backend import Backend, open_backend
from coinbt.clock import ManualClock

OpenBackend = Callable[[], AbstractAsyncContextManager[Backend]]

KINDS = ("sqlite", "postgres")


def backend_factory(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> tuple[OpenBackend, Path | str]:
    """``async with open_backend() as backend`` (the same database on every call, like a
    restart or, on PostgreSQL, another process), and the database it opens."""
    kind = request.param
    # A fresh database on the session's PostgreSQL server (the tests skip if there is none).
    db: Path | str = request.getfixturevalue("pg_dsn") if kind == "postgres" else tmp_path / "c.db"
    data_dir = tmp_path / "data"

    def factory() -> AbstractAsyncContextManager[Backend]:
        return open_backend(db, data_dir, clock=clock, retry_s=0.1)

    return factory, db
