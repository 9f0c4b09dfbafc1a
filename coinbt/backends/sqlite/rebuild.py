"""Rebuilding the read models from the log, and proving the live ones equal a rebuild.

Both work on a scratch SQLite file: the log is replayed from position 0 into it.
``verify_read_models`` replays up to the live checkpoint and compares every task and position row
with the live ones;
``rebuild_read_models`` replays the whole log and swaps the result into the live tables in one
transaction (safe while the service runs: the fold is deterministic, so the content is the same).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coinbt.backends.sqlite.migrations import apply_migrations, connect_sync
from coinbt.backends.sqlite.read_models import MAIN, ReadModelWriter
from coinbt.errors import DatabaseError
from coinbt.events import StoredEvent, decode_rows
from coinbt.projections.replay import ReplayReport, view_differences
from coinbt.store.base import Progress

__all__ = ("rebuild_read_models", "verify_read_models")

_SELECT_EVENTS = (
    "SELECT position, stream_id, version, type, schema, recorded_at,"
    " CAST(data AS BLOB), CAST(hash AS BLOB) FROM events WHERE position <= ? ORDER BY position"
)
_BATCH = 5000  # events folded per read-model transaction
_PROGRESS_EVERY = 10 * _BATCH


def _events(conn: sqlite3.Connection, upto: int) -> Iterator[StoredEvent]:
    cursor = conn.execute(_SELECT_EVENTS, (upto,))
    while rows := cursor.fetchmany(5000):
        yield from decode_rows(rows)


def _replay_into(
    db: Path, scratch: Path, upto: int | None, progress: Progress | None
) -> tuple[int, int]:
    """Replay the log of ``db`` (up to ``upto``, default all) into ``scratch``; (events, last)."""
    apply_migrations(scratch)
    source = connect_sync(db, readonly=True)
    target = connect_sync(scratch)
    try:
        if upto is None:
            upto = source.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
        writer = ReadModelWriter(target, cache_size=200_000, fresh=True)
        count = 0
        batch: list[StoredEvent] = []
        for stored in _events(source, upto):
            batch.append(stored)
            if len(batch) == _BATCH:
                writer.apply(batch)
                count += len(batch)
                batch.clear()
                if progress is not None and count % _PROGRESS_EVERY == 0:
                    progress(count, upto)
        writer.apply(batch)
        count += len(batch)
        if progress is not None:
            progress(count, upto)
        return count, writer.checkpoint
    finally:
        source.close()
        target.close()


_QUERIES = {
    "tasks": "SELECT task_id, view FROM tasks",
    "positions": "SELECT task_id || '/' || symbol, view FROM positions",
}


def _rows(conn: sqlite3.Connection, table: str) -> dict[str, Any]:
    """The table's stored views, undecoded (key -> msgpack bytes, or whatever a drifted row
    holds instead)."""
    return dict(conn.execute(_QUERIES[table]))


def verify_read_models(
    db: str | Path, *, max_differences: int = 20, progress: Progress | None = None
) -> ReplayReport:
    """Rebuild into a scratch file up to the live checkpoint and compare row by row.

    ``progress`` hears (events replayed, events to replay) every 50,000 events and at the end."""
    db = Path(db)
    live = connect_sync(db, readonly=True)
    try:
        row = live.execute(
            "SELECT position FROM projection_checkpoints WHERE name = ?", (MAIN,)
        ).fetchone()
        checkpoint = row[0] if row else 0
        live_rows = {table: _rows(live, table) for table in ("tasks", "positions")}
    except sqlite3.Error as e:
        raise DatabaseError(f"reading {db} failed: {e}") from e
    finally:
        live.close()
    with tempfile.TemporaryDirectory(prefix="coinbt-replay-") as tmp:
        scratch = Path(tmp) / "scratch.db"
        events, _ = _replay_into(db, scratch, checkpoint, progress)
        conn = connect_sync(scratch, readonly=True)
        try:
            rebuilt_rows = {table: _rows(conn, table) for table in ("tasks", "positions")}
        finally:
            conn.close()
    differences = view_differences(live_rows, rebuilt_rows, max_differences)
    return ReplayReport(
        events=events,
        checkpoint=checkpoint,
        tasks=len(rebuilt_rows["tasks"]),
        positions=len(rebuilt_rows["positions"]),
        differences=differences,
    )


def rebuild_read_models(db: str | Path, *, progress: Progress | None = None) -> ReplayReport:
    """Replay the whole log into a scratch file and swap it into the live read models.

    ``progress`` hears (events replayed, events to replay) every 50,000 events and at the end."""
    db = Path(db)
    with tempfile.TemporaryDirectory(prefix="coinbt-replay-") as tmp:
        scratch = Path(tmp) / "scratch.db"
        events, checkpoint = _replay_into(db, scratch, None, progress)
        conn = connect_sync(db)
        try:
            conn.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
            conn.execute("BEGIN IMMEDIATE")
            try:
                for table in ("tasks", "positions", "projection_checkpoints"):
                    conn.execute(f"DELETE FROM main.{table}")
                    conn.execute(f"INSERT INTO main.{table} SELECT * FROM scratch.{table}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            tasks = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            positions = conn.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
            conn.execute("DETACH DATABASE scratch")
        except sqlite3.Error as e:
            raise DatabaseError(f"rebuilding the read models of {db} failed: {e}") from e
        finally:
            conn.close()
    return ReplayReport(events=events, checkpoint=checkpoint, tasks=tasks, positions=positions)
