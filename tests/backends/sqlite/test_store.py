"""SQLite-only behaviour: durability settings, bad files, migrations, old schemas, SIGKILL (the
event store contract, ``tests/backends/test_event_store.py``, covers the rest)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from coinbt.backends.sqlite import open_sqlite_store, verify_file
from coinbt.backends.sqlite.migrations import LATEST, apply_migrations
from coinbt.clock import ManualClock
from coinbt.errors import (
    DatabaseError,
    NotADatabaseError,
)
from coinbt.events import Failed, register_upcaster
from coinbt.events.codec import _UPCASTERS
from tests.factories import cancelled, completed, filled, queued, started


def _raw(path: Path) -> sqlite3.Connection:
    """A raw connection without the append-only triggers: what a tamperer would do."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS events_no_update")
    conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
    return conn


async def _fill(path: Path, clock: ManualClock, streams: int = 3) -> None:
    async with open_sqlite_store(path, clock=clock) as store:
        for n in range(streams):
            await store.append(f"s{n}", [queued(), started(), filled(), completed()], 0)


async def test_durability_settings(tmp_path: Path, clock: ManualClock) -> None:
    async with open_sqlite_store(tmp_path / "log.db", clock=clock) as store:
        await store.append("a", [queued()], 0)
    conn = sqlite3.connect(tmp_path / "log.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST


async def test_not_a_database(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(NotADatabaseError, match="not an SQLite database"):
        async with open_sqlite_store(path, clock=clock):
            pass
    assert path.read_bytes().startswith(b"these are my notes")


async def test_unmigrated_file_is_refused_without_migrate(
    tmp_path: Path, clock: ManualClock
) -> None:
    apply_migrations(tmp_path / "old.db", target=0)
    with pytest.raises(DatabaseError, match="coinbt migrate"):
        async with open_sqlite_store(tmp_path / "old.db", clock=clock, migrate=False):
            pass


async def test_migrations_are_idempotent(tmp_path: Path) -> None:
    assert apply_migrations(tmp_path / "m.db") == list(range(1, LATEST + 1))
    assert apply_migrations(tmp_path / "m.db") == []


@pytest.fixture
def legacy_failed_upcaster() -> Iterator[None]:
    """A pretend schema 0 of Failed that called the error ``message`` and had no type."""

    def upcast(data: dict[str, object]) -> dict[str, object]:
        return {"type": "Failed", "error": data["message"], "error_type": "legacy"}

    register_upcaster("Failed", 0, upcast)
    yield
    del _UPCASTERS[("Failed", 0)]


@pytest.mark.usefixtures("legacy_failed_upcaster")
async def test_old_schema_is_upcast_on_read(tmp_path: Path, clock: ManualClock) -> None:
    import msgspec

    path = tmp_path / "log.db"
    async with open_sqlite_store(path, clock=clock) as store:
        await store.append("a", [queued(), started(), cancelled()], 0)
    old_payload = msgspec.msgpack.encode({"type": "Failed", "message": "disk on fire"})
    _raw(path).execute(
        "UPDATE events SET type = 'Failed', schema = 0, data = ? WHERE position = 3",
        (old_payload,),
    )
    async with open_sqlite_store(path, clock=clock) as store:
        [*_, last] = await store.read_stream("a")
    assert last.event == Failed(error="disk on fire", error_type="legacy")


_CHILD = textwrap.dedent(
    """
    import sys, anyio
    from coinbt.backends.sqlite import open_sqlite_store
    from tests.factories import queued, started

    async def main(path):
        async with open_sqlite_store(path) as store:
            async def appender(worker):
                n = 0
                while True:
                    stored = await store.append(f"w{worker}-{n}", [queued(), started()], 0)
                    print(stored[-1].position, flush=True)
                    n += 1
            async with anyio.create_task_group() as tg:
                for worker in range(8):
                    tg.start_soon(appender, worker)

    anyio.run(main, sys.argv[1])
    """
)


def test_sigkill_mid_append_leaves_an_intact_log(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
    )
    assert child.stdout is not None
    acknowledged: list[int] = []
    try:
        for line in child.stdout:
            acknowledged.append(int(line))
            if len(acknowledged) >= 400:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    report = verify_file(path)
    assert report.ok, report
    # Everything the child was told is committed is there, and the log has no holes.
    assert report.last_position >= max(acknowledged)
    conn = sqlite3.connect(path)
    positions = [r[0] for r in conn.execute("SELECT position FROM events ORDER BY position")]
    assert positions == list(range(1, report.last_position + 1))
    versions = conn.execute("SELECT COUNT(*) FROM events GROUP BY stream_id HAVING COUNT(*) != 2")
    assert versions.fetchall() == []  # each append landed whole or not at all
