"""SQLite-specific behaviour: durability settings, bad files, corrupt rows, tampering, SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from coinbt.backends.sqlite import open_sqlite_store, verify_file
from coinbt.backends.sqlite.migrations import LATEST, apply_migrations
from coinbt.clock import ManualClock
from coinbt.errors import (
    CorruptEventError,
    DatabaseError,
    NotADatabaseError,
    SchemaTooNewError,
    UnknownEventTypeError,
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


async def test_group_commit_batches_concurrent_appends(tmp_path: Path, clock: ManualClock) -> None:
    async with open_sqlite_store(tmp_path / "log.db", clock=clock) as store:
        async with anyio.create_task_group() as tg:
            for n in range(500):
                tg.start_soon(store.append, f"s{n}", [queued()], 0)
        stats = store.stats
    assert stats["appends"] == 500
    assert stats["transactions"] < 250  # many appends shared a transaction


async def test_triggers_refuse_update_and_delete(tmp_path: Path, clock: ManualClock) -> None:
    await _fill(tmp_path / "log.db", clock, streams=1)
    conn = sqlite3.connect(tmp_path / "log.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE events SET data = x'00' WHERE position = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM events WHERE position = 1")


async def test_not_a_database(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(NotADatabaseError, match="not an SQLite database"):
        async with open_sqlite_store(path, clock=clock):
            pass
    assert path.read_bytes().startswith(b"these are my notes")


async def test_newer_schema_is_refused(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "log.db"
    await _fill(path, clock, streams=1)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="schema version 999"):
        async with open_sqlite_store(path, clock=clock):
            pass
    with pytest.raises(SchemaTooNewError):
        async with open_sqlite_store(path, clock=clock, migrate=False):
            pass


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


async def test_corrupt_payload_names_its_position(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "log.db"
    await _fill(path, clock)
    _raw(path).execute("UPDATE events SET data = x'c1c1c1' WHERE position = 6")
    async with open_sqlite_store(path, clock=clock) as store:
        assert len(await store.read_all(limit=5)) == 5
        with pytest.raises(CorruptEventError, match="position 6"):
            await store.read_all()
        with pytest.raises(CorruptEventError, match="position 6"):
            await store.read_stream("s1")


async def test_unknown_event_type_names_its_position(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "log.db"
    await _fill(path, clock)
    _raw(path).execute("UPDATE events SET type = 'Teleported' WHERE position = 7")
    async with open_sqlite_store(path, clock=clock) as store:
        with pytest.raises(UnknownEventTypeError, match=r"position 7 .*'Teleported'"):
            await store.read_all()


async def test_payload_of_another_type_is_corrupt(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "log.db"
    await _fill(path, clock)
    _raw(path).execute("UPDATE events SET type = 'Started' WHERE position = 1")
    async with open_sqlite_store(path, clock=clock) as store:
        with pytest.raises(CorruptEventError, match="position 1"):
            await store.read_all()


@pytest.mark.parametrize(
    ("sql", "bad_position"),
    [
        pytest.param("UPDATE events SET data = data || x'00' WHERE position = 5", 5, id="payload"),
        pytest.param("UPDATE events SET recorded_at = 1 WHERE position = 9", 9, id="timestamp"),
        pytest.param("UPDATE events SET stream_id = 'x' WHERE position = 2", 2, id="stream"),
        pytest.param("DELETE FROM events WHERE position = 4", 4, id="deleted-row"),
        pytest.param("UPDATE events SET hash = zeroblob(32) WHERE position = 12", 12, id="hash"),
    ],
)
async def test_tampering_is_found_at_its_position(
    tmp_path: Path, clock: ManualClock, sql: str, bad_position: int
) -> None:
    path = tmp_path / "log.db"
    await _fill(path, clock)
    assert verify_file(path).ok
    _raw(path).execute(sql)
    report = verify_file(path)
    assert not report.ok
    assert report.first_bad_position == bad_position
    assert report.last_position == bad_position - 1
    assert report.reason


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
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
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


async def test_data_survives_reopen(tmp_path: Path, clock: ManualClock) -> None:
    async with open_sqlite_store(tmp_path / "log.db", clock=clock) as store:
        first = await store.append("a", [queued(), started(), filled(), completed()], 0)
    async with open_sqlite_store(tmp_path / "log.db", clock=clock) as store:
        assert await store.read_all() == first
        more = await store.append("a", [cancelled()], 4)
        assert more[0].position == 5
        assert (await store.verify()).ok
