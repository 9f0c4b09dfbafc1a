"""The dataset catalogue in the SQLite file: the ``datasets`` table, written on worker threads."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio

from coinbt.backends.sqlite.migrations import connect_sync
from coinbt.clock import Clock, SystemClock
from coinbt.datasets import COLUMNS, CatalogBase, DatasetInfo, stored_values
from coinbt.errors import DatabaseError, DatasetExistsError

__all__ = ("DatasetCatalog",)


class DatasetCatalog(CatalogBase):
    """Imported datasets of one SQLite database. Blocking work runs on worker threads."""

    def __init__(self, db: Path, data_dir: Path, clock: Clock | None = None) -> None:
        self.db = db
        self.data_dir = data_dir
        self._clock = clock or SystemClock()

    async def _rows(self, name: str | None) -> list[Any]:
        params: tuple[object, ...] = ()
        if name is None:
            sql = f"SELECT {COLUMNS} FROM datasets ORDER BY name, version"
        else:
            sql = f"SELECT {COLUMNS} FROM datasets WHERE name = ? ORDER BY version"
            params = (name,)
        return await anyio.to_thread.run_sync(self._query, sql, params)

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        conn = connect_sync(self.db, readonly=True)
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.Error as e:
            raise DatabaseError(f"reading datasets from {self.db} failed: {e}") from e
        finally:
            conn.close()

    async def _insert(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        await anyio.to_thread.run_sync(self._insert_sync, info, staged, target)

    def _insert_sync(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        marks = ", ".join("?" * len(COLUMNS.split(",")))
        conn = connect_sync(self.db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"INSERT INTO datasets ({COLUMNS}) VALUES ({marks})", stored_values(info)
                )
                staged.replace(target)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as e:
                conn.execute("ROLLBACK")
                raise DatasetExistsError(info.name) from e
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise DatabaseError(f"registering dataset {info.name!r} failed: {e}") from e
        finally:
            conn.close()

    async def _set_retired(self, name: str, at_us: int) -> None:
        def update() -> None:
            conn = connect_sync(self.db)
            try:
                with conn:
                    conn.execute(
                        "UPDATE datasets SET retired_at = ? WHERE name = ? AND retired_at IS NULL",
                        (at_us, name),
                    )
            except sqlite3.Error as e:
                raise DatabaseError(f"retiring dataset {name!r} failed: {e}") from e
            finally:
                conn.close()

        await anyio.to_thread.run_sync(update)
