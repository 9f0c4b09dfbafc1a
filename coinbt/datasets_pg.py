"""The dataset catalogue in PostgreSQL (the ``datasets`` table), files in the data directory.

Every process that runs backtests on imported datasets reads their ``.npz`` files from its data
directory, so with several hosts the data directory must be shared storage (NFS, a cluster file
system) mounted at the same path relative to ``--data-dir``. Names are unique in the table: of
two processes importing one name at once, one gets ``DatasetExistsError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import asyncpg  # type: ignore[import-untyped]
import msgspec

from coinbt.clock import Clock, SystemClock
from coinbt.datasets import (
    DatasetInfo,
    Listing,
    check_import,
    decode_rows,
    one_record,
    prepare_import,
)
from coinbt.errors import DatabaseError, DatasetExistsError
from coinbt.store._pgschema import DRIVER_ERRORS

__all__ = ("PgDatasetCatalog",)

_COLUMNS = "name, symbol, path, rows, start_ms, end_ms, interval_ms, sha256, source, created_at"


class PgDatasetCatalog:
    """Imported datasets recorded in PostgreSQL (a connection pool), files in ``data_dir``."""

    def __init__(self, pool: Any, data_dir: Path, clock: Clock | None = None) -> None:
        self._pool = pool
        self.data_dir = data_dir
        self._clock = clock or SystemClock()

    def path_of(self, info: DatasetInfo) -> Path:
        return self.data_dir / info.path

    async def get(self, name: str) -> DatasetInfo:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM datasets WHERE name = $1", name)
        return one_record(name, rows)

    async def all(self) -> list[DatasetInfo]:
        return (await self.listing()).datasets

    async def listing(self) -> Listing:
        return decode_rows(await self._fetch(f"SELECT {_COLUMNS} FROM datasets ORDER BY name"))

    async def import_bytes(
        self, name: str, data: bytes, *, symbol: str | None = None, source: str = "upload"
    ) -> DatasetInfo:
        check_import(name, symbol)
        if await self._fetch("SELECT 1 FROM datasets WHERE name = $1", name):
            raise DatasetExistsError(name)
        info, staged, target = await anyio.to_thread.run_sync(
            prepare_import, self.data_dir, self._clock, name, data, symbol, source
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO datasets ({_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    *msgspec.structs.astuple(info),
                )
                # In the transaction: if the commit fails, the file may stay, unrecorded, and a
                # later import of the name replaces it.
                await anyio.Path(staged).replace(target)
        except asyncpg.UniqueViolationError as e:
            raise DatasetExistsError(name) from e
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"registering dataset {name!r} failed: {e}") from e
        finally:
            await anyio.Path(staged).unlink(missing_ok=True)
        return info

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        try:
            return list(await self._pool.fetch(sql, *args))
        except DRIVER_ERRORS as e:
            raise DatabaseError(f"reading datasets failed: {e}") from e
