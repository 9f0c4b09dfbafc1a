"""Numbered schema migrations of the SQLite database file.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction together with the row that records
it, so a crash leaves either the old or the new schema, never half of one. Applying is idempotent;
a file whose schema is newer than ``LATEST`` is refused with ``SchemaTooNewError``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from coinbt.errors import DatabaseError, NotADatabaseError, SchemaTooNewError

__all__ = (
    "LATEST",
    "MIGRATIONS",
    "Migration",
    "apply_migrations",
    "connect_sync",
    "schema_version",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event log",
        """
        CREATE TABLE events (
            position     INTEGER PRIMARY KEY,
            stream_id    TEXT    NOT NULL,
            version      INTEGER NOT NULL,
            type         TEXT    NOT NULL,
            schema       INTEGER NOT NULL,
            recorded_at  INTEGER NOT NULL,  -- epoch microseconds, UTC
            data         BLOB    NOT NULL,  -- msgpack payload
            hash         BLOB    NOT NULL,  -- sha256(previous hash || canonical bytes)
            UNIQUE (stream_id, version)
        );
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
        """,
    ),
    Migration(
        2,
        "read models",
        """
        CREATE TABLE tasks (
            task_id          TEXT    PRIMARY KEY,
            seq              INTEGER NOT NULL,   -- position of the task's first event
            status           TEXT    NOT NULL,
            idempotency_key  TEXT,
            view             BLOB    NOT NULL    -- msgpack TaskView
        );
        CREATE UNIQUE INDEX tasks_seq ON tasks (seq);
        CREATE INDEX tasks_status_seq ON tasks (status, seq);
        CREATE INDEX tasks_idempotency_key ON tasks (idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE TABLE positions (
            task_id  TEXT NOT NULL,
            symbol   TEXT NOT NULL,
            view     BLOB NOT NULL,              -- msgpack PositionView
            PRIMARY KEY (task_id, symbol)
        );
        CREATE TABLE projection_checkpoints (
            name      TEXT    PRIMARY KEY,
            position  INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        3,
        "datasets",
        """
        CREATE TABLE datasets (
            name         TEXT    PRIMARY KEY,
            symbol       TEXT    NOT NULL,
            path         TEXT    NOT NULL,       -- the .npz file, relative to the data directory
            rows         INTEGER NOT NULL,
            start_ms     INTEGER NOT NULL,
            end_ms       INTEGER NOT NULL,
            interval_ms  INTEGER NOT NULL,
            sha256       TEXT    NOT NULL,
            source       TEXT    NOT NULL,       -- the imported file's name
            created_at   INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        4,
        "artifact outbox",
        """
        CREATE TABLE artifacts (
            key         TEXT    PRIMARY KEY,     -- the logical key, as in the Completed event
            task_id     TEXT    NOT NULL,
            name        TEXT    NOT NULL,        -- equity, fills...
            sha256      TEXT    NOT NULL,
            size        INTEGER NOT NULL,
            state       TEXT    NOT NULL CHECK (state IN ('pending', 'stored', 'failed')),
            location    TEXT,                    -- the store holding it: 'local' or a store URL
            staged      TEXT,                    -- the file waiting for upload (data-dir relative)
            attempts    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT,
            created_at  INTEGER NOT NULL,        -- epoch microseconds, UTC
            updated_at  INTEGER NOT NULL
        );
        CREATE INDEX artifacts_task ON artifacts (task_id);
        CREATE INDEX artifacts_pending ON artifacts (attempts, created_at, key)
            WHERE state = 'pending';
        CREATE INDEX artifacts_location ON artifacts (location, key);
        -- Completed events up to 'upto' predate the outbox: their artifacts get rows once
        -- (coinbt.artifacts.outbox.backfill), as stored in the data directory's local store.
        CREATE TABLE artifact_backfill (
            id    INTEGER PRIMARY KEY CHECK (id = 1),
            upto  INTEGER NOT NULL,
            done  INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO artifact_backfill (id, upto) SELECT 1, COALESCE(MAX(position), 0) FROM events;
        """,
    ),
    Migration(
        5,
        "dataset versions",
        """
        -- A dataset is a name with immutable versions: an update appends newer bars as the next
        -- version, and tasks record the version they used. Existing datasets become version 1.
        CREATE TABLE dataset_versions (
            name         TEXT    NOT NULL,
            version      INTEGER NOT NULL,
            symbol       TEXT    NOT NULL,
            path         TEXT    NOT NULL,       -- the .npz file, relative to the data directory
            rows         INTEGER NOT NULL,
            start_ms     INTEGER NOT NULL,
            end_ms       INTEGER NOT NULL,
            interval_ms  INTEGER NOT NULL,
            sha256       TEXT    NOT NULL,       -- of the .npz file
            source       TEXT    NOT NULL,       -- the imported file's name
            created_at   INTEGER NOT NULL,
            provenance   TEXT    NOT NULL DEFAULT '[]',  -- JSON [{"file", "sha256"}] of the inputs
            gaps         TEXT    NOT NULL DEFAULT '{}',  -- JSON {"count", "largest_ms", "at_ms"}
            retired_at   INTEGER,                -- set on every version when the name is retired
            PRIMARY KEY (name, version)
        );
        INSERT INTO dataset_versions (name, version, symbol, path, rows, start_ms, end_ms,
                                      interval_ms, sha256, source, created_at)
            SELECT name, 1, symbol, path, rows, start_ms, end_ms, interval_ms, sha256, source,
                   created_at
            FROM datasets;
        DROP TABLE datasets;
        ALTER TABLE dataset_versions RENAME TO datasets;
        """,
    ),
    Migration(
        6,
        "read models refolded",
        """
        -- Positions are folded from Completed's summaries now (and Filled events of old logs by
        -- the ledger's signed rule), task views know where their fills are: the read models are
        -- rebuilt from the log when the service starts (the log itself is untouched).
        DELETE FROM positions;
        DELETE FROM tasks;
        DELETE FROM projection_checkpoints WHERE name = 'main';
        """,
    ),
)

LATEST = MIGRATIONS[-1].version

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # FULL: in WAL mode every commit fsyncs the WAL, so a committed append survives power loss.
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)


def connect_sync(
    path: str | Path, *, readonly: bool = False, check_same_thread: bool = True
) -> sqlite3.Connection:
    """A plain sqlite3 connection with coinbt's pragmas; typed errors for a non-database file."""
    target = Path(path)
    if readonly:
        if not target.exists():
            raise DatabaseError(f"{target} does not exist")
        conn = sqlite3.connect(
            f"file:{target}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=check_same_thread)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
        for pragma in _PRAGMAS[1:] if readonly else _PRAGMAS:
            conn.execute(pragma)
    except sqlite3.DatabaseError as e:
        conn.close()
        if "not a database" in str(e) or "malformed" in str(e):
            raise NotADatabaseError(str(target)) from e
        raise DatabaseError(f"cannot open {target}: {e}") from e
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration (0 for a new file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def apply_migrations(
    path: str | Path, *, target: int = LATEST, now_us: int | None = None
) -> list[int]:
    """Apply every pending migration up to ``target``; returns the versions applied."""
    conn = connect_sync(path)
    try:
        return _apply(conn, str(path), target, now_us)
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"migrating {path} failed: {e}") from e
    finally:
        conn.close()


def _apply(conn: sqlite3.Connection, path: str, target: int, now_us: int | None) -> list[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    found = schema_version(conn)
    if found > LATEST:
        raise SchemaTooNewError(path, found, LATEST)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= migration.version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now_us or int(time.time() * 1e6)),
            )
            conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    statements: list[str] = []
    buffer = ""
    for line in sql.strip().splitlines():
        buffer += line + "\n"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
