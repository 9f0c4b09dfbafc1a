"""Where the service keeps its state: one SQLite file, one PostgreSQL database, or memory.

``open_backend(db, data_dir)`` opens, for any kind of database, one implementation of every
interface the service needs: the event log (:class:`~coinbt.store.base.EventStore`), the read
models (:class:`~coinbt.projections.base.ReadModels` and who writes them,
:class:`~coinbt.projections.base.Projection`), the dataset catalogue
(:class:`~coinbt.datasets.Catalog`) and the artifact outbox
(:class:`~coinbt.artifacts.outbox.Outbox`). A PostgreSQL database may be shared by several
``coinbt serve`` processes: each registers as an instance
(:class:`~coinbt.store.instances.Liveness`), which SQLite, owned by one process, does without.

``db`` is a path (SQLite), a ``postgresql://`` DSN, ``memory:`` (a fresh
:class:`~coinbt.backends.memory.MemoryDatabase`) or a ``MemoryDatabase`` to open again; files
(datasets, staging, the local artifact store) live under ``data_dir`` in every case. Each kind is
one package of ``coinbt.backends`` that owns its schema and every table-backed part.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from coinbt.artifacts.outbox import Outbox
from coinbt.backends.memory import (
    MemoryCatalog,
    MemoryDatabase,
    MemoryOutbox,
    MemoryProjection,
    MemoryReadModelReader,
)
from coinbt.backends.sqlite import open_sqlite_store
from coinbt.backends.sqlite.datasets import DatasetCatalog
from coinbt.backends.sqlite.migrations import connect_sync
from coinbt.backends.sqlite.outbox import open_outbox
from coinbt.backends.sqlite.read_models import ReadModelReader, SQLiteProjection
from coinbt.clock import Clock, SystemClock
from coinbt.datasets import Catalog
from coinbt.dburl import describe_db, is_dsn, is_memory, parse_db
from coinbt.projections.base import Projection, ReadModels
from coinbt.projections.fold import ViewCache
from coinbt.projections.status import TaskView
from coinbt.store.base import EventStore
from coinbt.store.instances import Liveness

__all__ = (
    "Backend",
    "describe_db",
    "is_dsn",
    "open_backend",
    "open_postgres_catalog",
    "parse_db",
)


@dataclass
class Backend:
    """The open implementations (see the module docstring)."""

    store: EventStore
    read: ReadModels
    projection: Projection
    catalog: Catalog
    outbox: Outbox
    liveness: Liveness | None  # None: one process owns the database
    kind: str  # "sqlite", "postgresql" or "memory"


@asynccontextmanager
async def open_backend(
    db: Path | str | MemoryDatabase,
    data_dir: Path,
    *,
    clock: Clock | None = None,
    retry_s: float = 1.0,
) -> AsyncIterator[Backend]:
    """Open (and migrate) the database ``db``; ``retry_s`` is how often a PostgreSQL process
    that does not write the read models checks whether it should take over."""
    clock = clock or SystemClock()
    if isinstance(db, MemoryDatabase) or is_memory(db):
        database = db if isinstance(db, MemoryDatabase) else MemoryDatabase(clock)
        yield _open_memory(database, data_dir)
    elif is_dsn(db):
        async with _open_postgres(str(db), data_dir, clock, retry_s) as backend:
            yield backend
    else:
        async with _open_sqlite(Path(db), data_dir, clock) as backend:
            yield backend


def _open_memory(database: MemoryDatabase, data_dir: Path) -> Backend:
    tables = database.read_models
    return Backend(
        store=database.store,
        read=MemoryReadModelReader(tables),
        projection=MemoryProjection(tables),
        catalog=MemoryCatalog(database.datasets, data_dir, database.clock),
        outbox=MemoryOutbox(database.artifacts, data_dir, database.clock),
        liveness=None,
        kind="memory",
    )


@asynccontextmanager
async def _open_sqlite(db: Path, data_dir: Path, clock: Clock) -> AsyncIterator[Backend]:
    async with (
        open_sqlite_store(db, clock=clock) as store,
        open_outbox(db, data_dir, clock) as outbox,
    ):
        reader = await aiosqlite.Connection(lambda: connect_sync(db), iter_chunk_size=64)
        # One process writes the file's read models: its writer's recent views can serve reads.
        recent: ViewCache[str, TaskView] = ViewCache(50_000)
        projection = SQLiteProjection(db, tasks=recent)
        try:
            yield Backend(
                store=store,
                read=ReadModelReader(reader, recent),
                projection=projection,
                catalog=DatasetCatalog(db, data_dir, clock),
                outbox=outbox,
                liveness=None,
                kind="sqlite",
            )
        finally:
            with anyio.CancelScope(shield=True):
                await projection.close()
                await reader.close()


@asynccontextmanager
async def _open_postgres(
    dsn: str, data_dir: Path, clock: Clock, retry_s: float
) -> AsyncIterator[Backend]:
    try:
        from coinbt.backends.postgres.datasets import PgDatasetCatalog
        from coinbt.backends.postgres.instances import open_instance
        from coinbt.backends.postgres.outbox import PgArtifactOutbox
        from coinbt.backends.postgres.read_models import PgProjection, PgReadModelReader
        from coinbt.backends.postgres.store import open_postgres_store
    except ModuleNotFoundError as e:
        if e.name != "asyncpg":
            raise
        from coinbt.errors import DatabaseError

        raise DatabaseError(
            "a PostgreSQL database needs asyncpg: pip install 'coinbt[postgres]'"
        ) from e
    async with (
        open_postgres_store(dsn, clock=clock) as store,
        _pool(dsn) as pool,
        open_instance(dsn, clock=clock) as instance,
    ):
        where = f"PostgreSQL at {describe_db(dsn)}"
        outbox = PgArtifactOutbox(pool, data_dir, instance, clock)
        await outbox.load_counts()
        projection = PgProjection(dsn, retry_s=retry_s)
        try:
            yield Backend(
                store=store,
                read=PgReadModelReader(pool, where),
                projection=projection,
                catalog=PgDatasetCatalog(pool, data_dir, clock),
                outbox=outbox,
                liveness=instance,
                kind="postgresql",
            )
        finally:
            await projection.close()


@asynccontextmanager
async def open_postgres_catalog(dsn: str, data_dir: Path) -> AsyncIterator[Catalog]:
    """The dataset catalogue of the database at ``dsn`` alone (migrated first), for the CLI."""
    from coinbt.backends.postgres.datasets import PgDatasetCatalog
    from coinbt.backends.postgres.store import migrate_postgres

    await migrate_postgres(dsn)
    async with _pool(dsn, size=1) as pool:
        yield PgDatasetCatalog(pool, data_dir)


@asynccontextmanager
async def _pool(dsn: str, size: int = 4) -> AsyncIterator[Any]:
    """A pool for the service's tables (read models, datasets, artifacts)."""
    import asyncpg  # type: ignore[import-untyped]

    from coinbt.backends.postgres.schema import CONNECT_ERRORS, SERVER_SETTINGS, connect_error

    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=size, timeout=10, server_settings=SERVER_SETTINGS
        )
    except CONNECT_ERRORS as e:
        raise connect_error(dsn, e) from e
    try:
        yield pool
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5) as closing:
            await pool.close()
        if closing.cancelled_caught:  # a query still holds a connection
            pool.terminate()
