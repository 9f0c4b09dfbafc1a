"""The dataset catalogue: imported market data, stored as immutable binary files.

A dataset is imported once from CSV (``coinbt data import`` or ``POST /datasets``), validated by
the engine's parser, written as ``datasets/<name>.npz`` under the data directory and registered in
the ``datasets`` table with its row count, time range, interval and sha256. Names are never reused:
past backtests refer to datasets by name, so a dataset never changes once imported.

:class:`Catalog` is the interface; :class:`DatasetCatalog` keeps the table in the SQLite file,
``coinbt.datasets_pg.PgDatasetCatalog`` in PostgreSQL (then the data directory must be shared by
every process that runs backtests on imported datasets).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Protocol

import anyio
import msgspec

from coinbt.clock import Clock, SystemClock, to_epoch_us
from coinbt.errors import DatabaseError, DatasetExistsError, DatasetNotFoundError, SpecError
from coinbt.store.migrations import connect_sync

__all__ = (
    "Catalog",
    "DatasetCatalog",
    "DatasetInfo",
    "Listing",
    "SkippedRow",
    "check_import",
    "check_name",
    "prepare_import",
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch: no "\n" after it
_log = logging.getLogger(__name__)
_COLUMNS = "name, symbol, path, rows, start_ms, end_ms, interval_ms, sha256, source, created_at"


class DatasetInfo(msgspec.Struct, frozen=True):
    name: str
    symbol: str
    path: str  # relative to the data directory
    rows: int
    start_ms: int
    end_ms: int
    interval_ms: int
    sha256: str
    source: str
    created_at: int  # epoch microseconds


class SkippedRow(msgspec.Struct, frozen=True):
    """A stored dataset record that cannot be shown (damaged, or written by a version that did
    not check its range): left out of listings and reported, never an error for the listing."""

    name: str
    reason: str


class Listing(msgspec.Struct, frozen=True):
    datasets: list[DatasetInfo]
    skipped: list[SkippedRow]


def decode_rows(rows: list[Any]) -> Listing:
    """Stored rows (in ``_COLUMNS`` order) to records; a bad row is skipped and reported."""
    from coinbt.engine.data import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS

    good: list[DatasetInfo] = []
    skipped: list[SkippedRow] = []
    for row in rows:
        values = tuple(row)
        try:
            fields = dict(zip(DatasetInfo.__struct_fields__, values, strict=True))
            info = msgspec.convert(fields, DatasetInfo)
            if not _NAME.fullmatch(info.name):
                raise ValueError("the name is not a valid dataset name")
            if not MIN_TIMESTAMP_MS <= info.start_ms <= info.end_ms < MAX_TIMESTAMP_MS:
                raise ValueError(
                    f"its time range {info.start_ms}..{info.end_ms} (epoch ms) is outside "
                    "1900-01-01 to 2200-01-01 UTC"
                )
            if info.rows < 1 or info.interval_ms < 0:
                raise ValueError(f"{info.rows} rows, interval {info.interval_ms} ms")
            if not 0 <= info.created_at < MAX_TIMESTAMP_MS * 1000:
                raise ValueError(f"created_at {info.created_at} is out of range")
        except (msgspec.ValidationError, ValueError, TypeError) as e:
            name = values[0] if values and isinstance(values[0], str) else repr(values[:1])
            skipped.append(SkippedRow(name=name, reason=str(e)))
            _log.warning("dataset record %r skipped: %s", name, e)
            continue
        good.append(info)
    return Listing(good, skipped)


def one_record(name: str, rows: list[Any]) -> DatasetInfo:
    """The record of ``name`` among ``rows``; ``DatasetNotFoundError`` if none or unreadable."""
    listing = decode_rows(rows)
    if listing.datasets:
        return listing.datasets[0]
    if listing.skipped:
        raise DatasetNotFoundError(
            name, reason=f"its record is unreadable: {listing.skipped[0].reason}"
        )
    raise DatasetNotFoundError(name)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise SpecError(
            "a dataset name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit; got {name!r}",
            field="name",
        )
    return name


def default_symbol(name: str) -> str:
    """``BTCUSDT-1m`` -> ``BTCUSDT``: the part before the first '-' or '_', upper-cased."""
    return re.split(r"[-_.]", name, maxsplit=1)[0].upper() or name.upper()


class Catalog(Protocol):
    """The imported datasets: their files in ``data_dir``, their records in a database."""

    data_dir: Path

    def path_of(self, info: DatasetInfo) -> Path: ...

    async def get(self, name: str) -> DatasetInfo:
        """The dataset called ``name``; ``DatasetNotFoundError`` if there is none."""
        ...

    async def all(self) -> list[DatasetInfo]:
        """Every dataset, by name (records that cannot be read are left out)."""
        ...

    async def listing(self) -> Listing:
        """Every dataset, by name, and the stored records that had to be skipped."""
        ...

    async def import_bytes(
        self, name: str, data: bytes, *, symbol: str | None = None, source: str = "upload"
    ) -> DatasetInfo:
        """Parse and validate CSV ``data``, store it, register it. Raises ``DataError`` (with the
        row) for bad data, ``SpecError`` for a bad name, ``DatasetExistsError`` if taken."""
        ...


def check_import(name: str, symbol: str | None) -> None:
    """``SpecError`` for a bad dataset name or symbol."""
    check_name(name)
    if symbol is not None and not _NAME.fullmatch(symbol):
        raise SpecError(f"invalid symbol {symbol!r}", field="symbol")


def prepare_import(
    data_dir: Path, clock: Clock, name: str, data: bytes, symbol: str | None, source: str
) -> tuple[DatasetInfo, Path, Path]:
    """Check and parse an import and write its file beside its final place (blocking work).
    Returns the record, the written file and where it goes once the record is committed."""
    from coinbt.engine import parse_csv, save_bars

    check_import(name, symbol)
    bars = parse_csv(data)
    relative = f"datasets/{name}.npz"
    target = data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: another process (on another host, with a shared data directory) may
    # be importing the same name right now; the database decides which one is recorded.
    fd, staged_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".partial")
    staged = Path(staged_name)
    with os.fdopen(fd, "wb") as f:
        save_bars(f, bars)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    info = DatasetInfo(
        name=name,
        symbol=symbol or default_symbol(name),
        path=relative,
        rows=len(bars),
        start_ms=int(bars.ts[0]),
        end_ms=int(bars.ts[-1]),
        interval_ms=int(bars.interval_ms),
        sha256=digest,
        source=source,
        created_at=to_epoch_us(clock.now()),
    )
    return info, staged, target


class DatasetCatalog:
    """Imported datasets of one SQLite database. Blocking work runs on worker threads."""

    def __init__(self, db: Path, data_dir: Path, clock: Clock | None = None) -> None:
        self.db = db
        self.data_dir = data_dir
        self._clock = clock or SystemClock()

    def path_of(self, info: DatasetInfo) -> Path:
        return self.data_dir / info.path

    async def get(self, name: str) -> DatasetInfo:
        return await anyio.to_thread.run_sync(self.get_sync, name)

    def get_sync(self, name: str) -> DatasetInfo:
        rows = self._query(f"SELECT {_COLUMNS} FROM datasets WHERE name = ?", (name,))
        return one_record(name, rows)

    async def all(self) -> list[DatasetInfo]:
        return (await self.listing()).datasets

    async def listing(self) -> Listing:
        rows = await anyio.to_thread.run_sync(
            self._query, f"SELECT {_COLUMNS} FROM datasets ORDER BY name", ()
        )
        return decode_rows(rows)

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        conn = connect_sync(self.db, readonly=True)
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.Error as e:
            raise DatabaseError(f"reading datasets from {self.db} failed: {e}") from e
        finally:
            conn.close()

    async def import_bytes(
        self, name: str, data: bytes, *, symbol: str | None = None, source: str = "upload"
    ) -> DatasetInfo:
        return await anyio.to_thread.run_sync(
            lambda: self.import_sync(name, data, symbol=symbol, source=source)
        )

    def import_sync(
        self, name: str, data: bytes, *, symbol: str | None = None, source: str = "upload"
    ) -> DatasetInfo:
        """Parse and validate CSV ``data``, store it, register it. Raises ``DataError`` (with the
        row) for bad data, ``SpecError`` for a bad name, ``DatasetExistsError`` if taken."""
        check_import(name, symbol)
        if self._exists(name):
            raise DatasetExistsError(name)
        info, staged, target = prepare_import(
            self.data_dir, self._clock, name, data, symbol, source
        )
        conn = connect_sync(self.db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"INSERT INTO datasets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    msgspec.structs.astuple(info),
                )
                staged.replace(target)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as e:
                conn.execute("ROLLBACK")
                raise DatasetExistsError(name) from e
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise DatabaseError(f"registering dataset {name!r} failed: {e}") from e
        finally:
            conn.close()
            staged.unlink(missing_ok=True)
        return info

    def _exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM datasets WHERE name = ?", (name,)))
