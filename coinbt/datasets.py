"""The dataset catalogue: imported market data, stored as immutable, versioned binary files.

A dataset is imported from CSV (``coinbt data import`` or ``POST /datasets``), from an exchange
archive (``coinbt data fetch``) or derived (``coinbt data resample``), validated by the engine's
parser, written as ``datasets/<name>.npz`` under the data directory and registered in the
``datasets`` table with its row count, time range, interval, gaps, sha256 and provenance (its
input files and their sha256). A version never changes: an update (``--update``) adds the next
version (``datasets/<name>@v2.npz``) with the newer bars appended, and a task records the version
it used. A name is never reused; an operator can retire it (hidden from listings and new tasks,
kept for the tasks that used it). docs/data.md.

:class:`Catalog` is the interface and :class:`CatalogBase` what every backend's catalogue shares;
each backend keeps the table its own way (``coinbt.backends.sqlite.datasets``,
``coinbt.backends.postgres.datasets``, where the data directory must be shared by every process
that runs backtests on imported datasets, ``coinbt.backends.memory.datasets``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import msgspec

from coinbt.clock import Clock, to_epoch_us
from coinbt.data.gaps import GapReport
from coinbt.errors import (
    DataError,
    DatasetExistsError,
    DatasetNotFoundError,
    SpecError,
)

if TYPE_CHECKING:
    from coinbt.data.spool import Spool
    from coinbt.engine import Bars

__all__ = (
    "COLUMNS",
    "Catalog",
    "CatalogBase",
    "DatasetInfo",
    "Listing",
    "SkippedRow",
    "SourceFile",
    "check_import",
    "check_name",
    "decode_rows",
    "iso_ms",
    "relative_path",
    "stored_values",
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch: no "\n" after it
_log = logging.getLogger(__name__)
COLUMNS = (
    "name, symbol, path, rows, start_ms, end_ms, interval_ms, sha256, source, created_at, "
    "version, provenance, gaps, retired_at"
)


class SourceFile(msgspec.Struct, frozen=True):
    """One input of a dataset: a file name (or archive URL) and the sha256 of its bytes."""

    file: str
    sha256: str


class DatasetInfo(msgspec.Struct, frozen=True):
    """One version of a dataset. Versions never change; an update adds the next version."""

    name: str
    symbol: str
    path: str  # relative to the data directory
    rows: int
    start_ms: int
    end_ms: int
    interval_ms: int
    sha256: str  # of the bars file
    source: str
    created_at: int  # epoch microseconds
    version: int = 1
    provenance: list[SourceFile] = []
    gaps: GapReport = GapReport()
    retired_at: int | None = None  # epoch microseconds; retired names take no new tasks


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
            for key in ("provenance", "gaps"):
                if isinstance(fields[key], (str, bytes)):
                    fields[key] = msgspec.json.decode(fields[key])
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
        except (msgspec.DecodeError, ValueError, TypeError) as e:
            name = values[0] if values and isinstance(values[0], str) else repr(values[:1])
            skipped.append(SkippedRow(name=name, reason=str(e)))
            _log.warning("dataset record %r skipped: %s", name, e)
            continue
        good.append(info)
    return Listing(good, skipped)


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

    async def get(
        self, name: str, version: int | None = None, *, include_retired: bool = False
    ) -> DatasetInfo:
        """Version ``version`` of ``name`` (default: the latest). ``DatasetNotFoundError`` if
        there is none, or the name is retired and ``include_retired`` is false."""
        ...

    async def versions(self, name: str) -> list[DatasetInfo]:
        """Every version of ``name``, oldest first (retired ones too)."""
        ...

    async def all(self) -> list[DatasetInfo]:
        """The latest version of every dataset not retired, by name (unreadable records left
        out)."""
        ...

    async def listing(self, *, include_retired: bool = False) -> Listing:
        """The latest version of every dataset, by name, and the records that were skipped."""
        ...

    async def import_stream(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        *,
        symbol: str | None = None,
        source: str = "upload",
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo:
        """Parse CSV as it arrives, store it, register it (see :class:`CatalogBase`)."""
        ...

    async def import_bytes(
        self,
        name: str,
        data: bytes,
        *,
        symbol: str | None = None,
        source: str = "upload",
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo: ...

    async def import_bars(
        self,
        name: str,
        bars: Iterable[Bars],
        *,
        symbol: str | None = None,
        source: str,
        provenance: list[SourceFile],
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo: ...

    async def retire(self, name: str) -> DatasetInfo: ...


def check_import(name: str, symbol: str | None) -> None:
    """``SpecError`` for a bad dataset name or symbol."""
    check_name(name)
    if symbol is not None and not _NAME.fullmatch(symbol):
        raise SpecError(f"invalid symbol {symbol!r}", field="symbol")


def relative_path(name: str, version: int) -> str:
    """Where version ``version`` of ``name`` lives under the data directory ('@' is never in a
    name, so no two (name, version) pairs share a file)."""
    return f"datasets/{name}.npz" if version == 1 else f"datasets/{name}@v{version}.npz"


def _latest_per_name(listing: Listing, include_retired: bool) -> Listing:
    latest: dict[str, DatasetInfo] = {}
    for info in listing.datasets:
        if info.name not in latest or info.version > latest[info.name].version:
            latest[info.name] = info
    shown = [i for _, i in sorted(latest.items()) if include_retired or i.retired_at is None]
    return Listing(shown, listing.skipped)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC (``2024-01-01T00:00:00Z``)."""
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def _gap_message(gaps: GapReport, interval_ms: int) -> str:
    return (
        f"{gaps.count} gap(s), {gaps.missing} missing bar(s) at interval {interval_ms} ms; the "
        f"largest is {gaps.largest_ms // 1000} s after {iso_ms(gaps.at_ms)}"
    )


class CatalogBase:
    """What every catalogue does, over three storage hooks a backend provides: ``_rows`` (the
    stored records of one name, or of all), ``_insert`` (record a version and move its file into
    place in one transaction) and ``_set_retired``.

    An import parses CSV a chunk at a time (:class:`coinbt.engine.csvstream.CsvChunks`) into
    column files (:class:`coinbt.data.spool.Spool`), so memory stays at about one chunk; the bars
    file is written beside its final place and moved there when its record commits. A new name is
    version 1; ``update=True`` appends the bars newer than the latest version's last bar as the
    next version (nothing new: the latest version is returned unchanged). ``strict=True`` refuses
    data with gaps (spacings longer than the interval).
    """

    data_dir: Path
    _clock: Clock

    async def _rows(self, name: str | None) -> list[Any]:
        raise NotImplementedError

    async def _insert(self, info: DatasetInfo, staged: Path, target: Path) -> None:
        raise NotImplementedError

    async def _set_retired(self, name: str, at_us: int) -> None:
        raise NotImplementedError

    def path_of(self, info: DatasetInfo) -> Path:
        return self.data_dir / info.path

    async def versions(self, name: str) -> list[DatasetInfo]:
        listing = decode_rows(await self._rows(name))
        if not listing.datasets:
            if listing.skipped:
                reason = f"its record is unreadable: {listing.skipped[0].reason}"
                raise DatasetNotFoundError(name, reason=reason)
            raise DatasetNotFoundError(name)
        return sorted(listing.datasets, key=lambda i: i.version)

    async def get(
        self, name: str, version: int | None = None, *, include_retired: bool = False
    ) -> DatasetInfo:
        versions = await self.versions(name)
        retired_at = versions[-1].retired_at
        if retired_at is not None and not include_retired:
            raise DatasetNotFoundError(
                name,
                reason=f"retired at {iso_ms(retired_at // 1000)}: kept for the tasks that used "
                "it, closed to new ones",
            )
        if version is None:
            return versions[-1]
        for info in versions:
            if info.version == version:
                return info
        raise DatasetNotFoundError(name, version)

    async def listing(self, *, include_retired: bool = False) -> Listing:
        return _latest_per_name(decode_rows(await self._rows(None)), include_retired)

    async def all(self) -> list[DatasetInfo]:
        return (await self.listing()).datasets

    async def retire(self, name: str) -> DatasetInfo:
        """Retire ``name`` (every version): hidden from listings and new tasks, kept on disk and
        in the database for the tasks that used it. Retiring twice changes nothing."""
        latest = (await self.versions(name))[-1]
        if latest.retired_at is not None:
            return latest
        at = to_epoch_us(self._clock.now())
        await self._set_retired(name, at)
        return msgspec.structs.replace(latest, retired_at=at)

    async def import_bytes(
        self,
        name: str,
        data: bytes,
        *,
        symbol: str | None = None,
        source: str = "upload",
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo:
        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.import_stream(
            name, one(), symbol=symbol, source=source, update=update, strict=strict
        )

    async def import_stream(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        *,
        symbol: str | None = None,
        source: str = "upload",
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo:
        from coinbt.engine.csvstream import CsvChunks

        check_import(name, symbol)
        previous = await self._previous(name, update)
        parser = CsvChunks()
        digest = hashlib.sha256()
        with await self._spool(name, previous) as spool:

            def feed(data: bytes) -> None:
                digest.update(data)
                spool.add(parser.feed(data))

            async for data in chunks:
                await anyio.to_thread.run_sync(feed, data)
            await anyio.to_thread.run_sync(lambda: spool.add(parser.finish()))
            provenance = [SourceFile(file=source, sha256=digest.hexdigest())]
            return await self._register(name, spool, previous, symbol, source, provenance, strict)

    async def import_bars(
        self,
        name: str,
        bars: Iterable[Bars],
        *,
        symbol: str | None = None,
        source: str,
        provenance: list[SourceFile],
        update: bool = False,
        strict: bool = False,
    ) -> DatasetInfo:
        """Register bars already parsed (a download, a resample), given where they came from."""
        check_import(name, symbol)
        previous = await self._previous(name, update)
        with await self._spool(name, previous) as spool:

            def add_all() -> None:
                for piece in bars:
                    spool.add(piece)

            await anyio.to_thread.run_sync(add_all)
            return await self._register(name, spool, previous, symbol, source, provenance, strict)

    async def _previous(self, name: str, update: bool) -> DatasetInfo | None:
        try:
            versions = await self.versions(name)
        except DatasetNotFoundError as e:
            if update and e.version is None:
                raise
            return None
        if not update:
            raise DatasetExistsError(name)
        if versions[-1].retired_at is not None:
            raise SpecError(f"dataset {name!r} is retired: it takes no new versions", field="name")
        return versions[-1]

    async def _spool(self, name: str, previous: DatasetInfo | None) -> Spool:
        from coinbt.data.spool import Spool
        from coinbt.engine import load_bars

        def open_spool() -> Spool:
            spool = Spool(self.data_dir / "datasets", name)
            if previous is not None:
                try:
                    spool.add(load_bars(self.path_of(previous)))
                except BaseException:
                    spool.close()
                    raise
                spool.after_ms = previous.end_ms
            return spool

        return await anyio.to_thread.run_sync(open_spool)

    async def _register(
        self,
        name: str,
        spool: Spool,
        previous: DatasetInfo | None,
        symbol: str | None,
        source: str,
        provenance: list[SourceFile],
        strict: bool,
    ) -> DatasetInfo:
        if previous is not None and spool.rows == previous.rows:
            return previous  # nothing newer than the latest version
        folder = self.data_dir / "datasets"
        interval = previous.interval_ms if previous is not None else None
        staged = await anyio.to_thread.run_sync(spool.write, folder, name, interval)
        try:
            if strict and staged.gaps.count:
                raise DataError(
                    "refused (--strict): " + _gap_message(staged.gaps, staged.interval_ms)
                )
            version = 1 if previous is None else previous.version + 1
            relative = relative_path(name, version)
            info = DatasetInfo(
                name=name,
                symbol=symbol or (previous.symbol if previous else default_symbol(name)),
                path=relative,
                rows=staged.rows,
                start_ms=staged.start_ms,
                end_ms=staged.end_ms,
                interval_ms=staged.interval_ms,
                sha256=staged.sha256,
                source=source,
                created_at=to_epoch_us(self._clock.now()),
                version=version,
                provenance=[*(previous.provenance if previous else []), *provenance],
                gaps=staged.gaps,
            )
            await self._insert(info, staged.path, self.data_dir / relative)
        finally:
            await anyio.Path(staged.path).unlink(missing_ok=True)
        return info


def stored_values(info: DatasetInfo) -> tuple[Any, ...]:
    """``info`` as the row of the ``datasets`` table (``COLUMNS`` order; JSON for the lists)."""
    values = list(msgspec.structs.astuple(info))
    values[11] = msgspec.json.encode(info.provenance).decode()
    values[12] = msgspec.json.encode(info.gaps).decode()
    return tuple(values)
