"""PostgreSQL plumbing of the event store: connecting with typed errors, numbered migrations.

Each migration runs in its own transaction together with the row recording it, under a
transaction-scoped advisory lock, so several processes opening one database at once apply each
migration exactly once. A database whose schema is newer than ``LATEST`` is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from coinbt.errors import DatabaseError, SchemaTooNewError

__all__ = (
    "CONNECT_ERRORS",
    "DRIVER_ERRORS",
    "INSTANCE_LOCKS",
    "LATEST",
    "MIGRATIONS",
    "PROJECTOR_LOCK",
    "PgMigration",
    "apply_migrations",
    "check_schema",
    "connect",
    "connect_error",
    "describe",
    "schema_version",
)

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What asyncpg raises for a failed statement or a lost connection; translated to DatabaseError."""

CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ValueError, OverflowError)
"""What asyncpg raises for an unreachable server or a malformed DSN."""

# Every connection of the store commits durably, whatever the server's default: COMMIT returns
# only once the commit's WAL record is flushed to disk (and to any synchronous standby).
# TCP keepalives (over TCP; ignored on a unix socket): the server ends the session of a client
# whose machine vanished within about 25 s (not the system default of hours), which releases its
# session locks -- how the other coinbt processes learn that it is gone (postgres.instances).
SERVER_SETTINGS = {
    "synchronous_commit": "on",
    "application_name": "coinbt",
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

# Any constant will do: it only has to be the same in every coinbt process.
_MIGRATION_LOCK = 0x636F696E6274  # "coinbt"

# Session-level advisory locks in the two-key space (which never meets the one-key space above):
# (PROJECTOR_LOCK, 0) is held by the one process writing the read models; (INSTANCE_LOCKS, id)
# by the live serve process registered as ``instances.id``.
PROJECTOR_LOCK = 0x63627470  # "cbtp"
INSTANCE_LOCKS = 0x63627469  # "cbti"


@dataclass(frozen=True, slots=True)
class PgMigration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[PgMigration, ...] = (
    PgMigration(
        1,
        "event log",
        """
        CREATE TABLE events (
            position     BIGINT  PRIMARY KEY,
            stream_id    TEXT    NOT NULL,
            version      INTEGER NOT NULL,
            type         TEXT    NOT NULL,
            schema       INTEGER NOT NULL,
            recorded_at  BIGINT  NOT NULL,  -- epoch microseconds, UTC
            data         BYTEA   NOT NULL,  -- msgpack payload
            hash         BYTEA   NOT NULL,  -- sha256(previous hash || canonical bytes)
            UNIQUE (stream_id, version)
        );
        -- stream_ids(): the streams in the order of their first event, without a full scan.
        CREATE INDEX events_stream_starts ON events (position) WHERE version = 1;

        -- The head of the log: one row, locked by every append (FOR UPDATE) for the length of its
        -- transaction. Appends from any number of processes therefore assign positions, extend
        -- the hash chain and commit one after the other, in position order.
        CREATE TABLE event_head (
            id        BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
            position  BIGINT  NOT NULL,
            hash      BYTEA   NOT NULL
        );
        INSERT INTO event_head (position, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

        CREATE FUNCTION coinbt_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the event log is append-only (% on %)', TG_OP, TG_TABLE_NAME;
        END
        $$;
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
            FOR EACH ROW EXECUTE FUNCTION coinbt_append_only();
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
            FOR EACH ROW EXECUTE FUNCTION coinbt_append_only();
        CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION coinbt_append_only();
        CREATE TRIGGER event_head_no_delete BEFORE DELETE ON event_head
            FOR EACH ROW EXECUTE FUNCTION coinbt_append_only();
        CREATE TRIGGER event_head_no_truncate BEFORE TRUNCATE ON event_head
            FOR EACH STATEMENT EXECUTE FUNCTION coinbt_append_only();
        """,
    ),
    PgMigration(
        2,
        "service tables",
        """
        -- The read models (coinbt/projections/postgres.py): written by one projector at a time, in
        -- the same transaction as its checkpoint.
        CREATE TABLE tasks (
            task_id          TEXT    PRIMARY KEY,
            seq              BIGINT  NOT NULL,   -- position of the task's first event
            status           TEXT    NOT NULL,
            idempotency_key  TEXT,
            view             BYTEA   NOT NULL    -- msgpack TaskView
        );
        CREATE UNIQUE INDEX tasks_seq ON tasks (seq);
        CREATE INDEX tasks_status_seq ON tasks (status, seq);
        CREATE INDEX tasks_idempotency_key ON tasks (idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE TABLE positions (
            task_id  TEXT  NOT NULL,
            symbol   TEXT  NOT NULL,
            view     BYTEA NOT NULL,             -- msgpack PositionView
            PRIMARY KEY (task_id, symbol)
        );
        CREATE TABLE projection_checkpoints (
            name      TEXT    PRIMARY KEY,
            position  BIGINT  NOT NULL
        );
        INSERT INTO projection_checkpoints (name, position) VALUES ('main', 0);

        -- The dataset catalogue: the .npz files live in the (shared) data directory.
        CREATE TABLE datasets (
            name         TEXT    PRIMARY KEY,
            symbol       TEXT    NOT NULL,
            path         TEXT    NOT NULL,       -- the .npz file, relative to the data directory
            rows         BIGINT  NOT NULL,
            start_ms     BIGINT  NOT NULL,
            end_ms       BIGINT  NOT NULL,
            interval_ms  BIGINT  NOT NULL,
            sha256       TEXT    NOT NULL,
            source       TEXT    NOT NULL,
            created_at   BIGINT  NOT NULL
        );

        -- The artifact outbox; a pending row is uploaded by the process that staged its file
        -- (owner), or adopted by another once that process is gone.
        CREATE TABLE artifacts (
            key         TEXT    PRIMARY KEY,
            task_id     TEXT    NOT NULL,
            name        TEXT    NOT NULL,
            sha256      TEXT    NOT NULL,
            size        BIGINT  NOT NULL,
            state       TEXT    NOT NULL CHECK (state IN ('pending', 'stored', 'failed')),
            location    TEXT,
            staged      TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            last_error  TEXT,
            created_at  BIGINT  NOT NULL,
            updated_at  BIGINT  NOT NULL,
            owner       TEXT                     -- the instance that staged it (pending rows)
        );
        CREATE INDEX artifacts_task ON artifacts (task_id);
        CREATE INDEX artifacts_pending ON artifacts (owner, attempts, created_at, key)
            WHERE state = 'pending';
        CREATE INDEX artifacts_location ON artifacts (location, key);

        -- One row per coinbt serve process that ever opened this database. While a process
        -- lives, its session holds the advisory lock (INSTANCE_LOCKS, id).
        CREATE TABLE instances (
            id          SERIAL  PRIMARY KEY,
            host        TEXT    NOT NULL,
            pid         INTEGER NOT NULL,
            started_at  BIGINT  NOT NULL
        );
        """,
    ),
    PgMigration(
        3,
        "dataset versions",
        """
        -- As SQLite's migration 5: immutable versions of a name, provenance, gaps, retirement.
        ALTER TABLE datasets ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE datasets ADD COLUMN provenance TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE datasets ADD COLUMN gaps TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE datasets ADD COLUMN retired_at BIGINT;
        ALTER TABLE datasets DROP CONSTRAINT datasets_pkey;
        ALTER TABLE datasets ADD PRIMARY KEY (name, version);
        """,
    ),
    PgMigration(
        4,
        "read models refolded",
        """
        -- As SQLite's migration 6: the read models are rebuilt from the log.
        DELETE FROM positions;
        DELETE FROM tasks;
        UPDATE projection_checkpoints SET position = 0 WHERE name = 'main';
        """,
    ),
)

LATEST = MIGRATIONS[-1].version


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.rpartition("@")
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        return "the given DSN"


async def connect(dsn: str, **kwargs: Any) -> Any:
    """An asyncpg connection; ``DatabaseError`` naming the server if it cannot be had."""
    try:
        return await asyncpg.connect(dsn, timeout=10, server_settings=SERVER_SETTINGS, **kwargs)
    except CONNECT_ERRORS as e:
        raise connect_error(dsn, e) from e


def connect_error(dsn: str, error: BaseException) -> DatabaseError:
    reason = str(error).strip() or type(error).__name__
    return DatabaseError(f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}")


async def schema_version(conn: Any) -> int:
    """The highest applied migration (0 for a database coinbt has not touched)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    found = await conn.fetchval("SELECT MAX(version) FROM schema_migrations")
    return int(found or 0)


async def check_schema(conn: Any, dsn: str) -> None:
    """Refuse a database that is not exactly at ``LATEST``."""
    found = await schema_version(conn)
    if found > LATEST:
        raise SchemaTooNewError(describe(dsn), found, LATEST)
    if found < LATEST:
        raise DatabaseError(
            f"{describe(dsn)} is at schema {found}; run 'coinbt migrate --db {describe(dsn)}'"
        )


async def apply_migrations(conn: Any, dsn: str, *, target: int = LATEST) -> list[int]:
    """Apply every pending migration up to ``target``; returns the versions applied."""
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version > target:
            break
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            # Read under the lock: another process may have migrated meanwhile.
            found = await schema_version(conn)
            if found > LATEST:
                raise SchemaTooNewError(describe(dsn), found, LATEST)
            if found >= migration.version:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                int(time.time() * 1e6),
            )
        applied.append(migration.version)
    if not applied:  # nothing to do, but a newer schema must still be refused
        found = await schema_version(conn)
        if found > LATEST:
            raise SchemaTooNewError(describe(dsn), found, LATEST)
    return applied
