"""Fixtures shared by every test package: a clock, ids, and a PostgreSQL server (one per session,
one empty database per test)."""

from __future__ import annotations

import atexit
import itertools
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coinbt.clock import ManualClock, SequentialIds
from tests.pg import PostgresUnavailableError, TemporaryServer, find_bindir

_ROOT = Path(__file__).parents[1]
_databases = itertools.count(1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2024, 1, 1, tzinfo=UTC))


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds("t")


@pytest.fixture(scope="session")
def pg_server() -> TemporaryServer:
    """A throwaway server on 127.0.0.1 (installed by scripts/ensure-postgres if need be).

    Skips, saying what is missing, where no server can be installed or started.
    """
    pytest.importorskip("asyncpg", reason="the PostgreSQL driver is missing: pip install asyncpg")
    if find_bindir() is None:
        subprocess.run(
            [str(_ROOT / "scripts" / "ensure-postgres")],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=600,
        )
    try:
        server = TemporaryServer()
        server.start()
    except PostgresUnavailableError as e:
        pytest.skip(f"no PostgreSQL server for the tests: {e}")
    # Stopped at exit, not in this fixture's teardown: the teardown runs inside the last test's
    # timeout, and removing a data directory that a whole session filled can take longer than
    # that on a busy disk (seen under load), failing a test that passed.
    atexit.register(server.stop)
    return server


@pytest.fixture
def pg_dsn(pg_server: TemporaryServer) -> str:
    """The DSN of a new, empty database on the session's server."""
    return pg_server.create_database(f"test_{next(_databases)}")
