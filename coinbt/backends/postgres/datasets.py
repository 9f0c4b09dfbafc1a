"""The dataset catalogue in PostgreSQL (the ``datasets`` table), files in the data directory.

Every process that runs backtests on imported datasets reads their ``.npz`` files from its data
directory, so with several hosts the data directory must be shared storage (NFS, a cluster file
system) mounted at the same path relative to ``--data-dir``. (name, version) is unique in the
table: of two processes importing one name (or the same next version) at once, one gets
``DatasetExistsError``. Everything else is :class:`coinbt.datasets.CatalogBase`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]

from coinbt.backends.postgres.schema import DRIVER_ERRORS
from coinbt.clock import Clock, SystemClock
from coinbt.datasets import COLUMNS, CatalogBase, DatasetInfo, stored_values
from coinbt.errors import DatabaseError, DatasetExistsError

__all__ = ("PgDatasetCatalog",)


class PgDatasetCatalog(CatalogBase):
    """Imported datasets recorded in PostgreSQL (a connection pool), files in ``data_dir``."""

    def __init__(self, pool: Any, data_dir: Path, clock: Clock | None = None) -> None:
        self._pool = pool
        self.data_dir = data_dir
        self._clock = clock or SystemClock()

    async def _rows(self, name: str | None) -> list[Any]:
        if name is None:
            return await self._fetch(f"SELECT {COLUMNS} FROM datasets ORDER BY name, version")
        return await self._fetch(
            f"SELECT {COLUMNS} FROM datasets WHERE name = $1 ORDER BY version", name
        )

    async def _insert(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        marks = ", ".join(f"${i + 1}" for i in range(len(COLUMNS.split(","))))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO datasets ({COLUMNS}) VALUES ({marks})", *stored_values(info)
                )
                # In the transaction: if the commit fails, the file may stay, unrecorded, and a
                # later import of the name replaces it.
                await anyio.Path(staged).replace(target)
        except asyncpg.UniqueViolationError as e:
            raise DatasetExistsError(info.name) from e
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"registering dataset {info.name!r} failed: {e}") from e

    async def _set_retired(self, name: str, at_us: int) -> None:
        try:
            await self._pool.execute(
                "UPDATE datasets SET retired_at = $1 WHERE name = $2 AND retired_at IS NULL",
                at_us,
                name,
            )
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"retiring dataset {name!r} failed: {e}") from e

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"reading datasets failed: {e}") from e
