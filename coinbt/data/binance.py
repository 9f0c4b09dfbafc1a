"""Binance's public kline archive (https://data.binance.vision): plan, download, verify, read.

Layout: ``data/<market>/<monthly|daily>/klines/<SYMBOL>/<INTERVAL>/<SYMBOL>-<INTERVAL>-<DATE>.zip``
with ``<market>`` ``spot`` or ``futures/um``, each zip beside a ``.zip.CHECKSUM`` file holding
its sha256 (``<hex>  <file name>``). Whole months come from the monthly files; the current
month, which has none yet, from the daily files up to yesterday.

Downloads go to a cache directory and are kept only once their sha256 matches the published
checksum, so a rerun fetches only what is missing; an interrupted file resumes from its ``.part``
with an HTTP range request. The HTTP client is aiohttp, which coinbt already installs (aiobotocore,
the S3 client, depends on it).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import anyio

from coinbt.engine import Bars, parse_csv
from coinbt.errors import CoinbtError, DataError

__all__ = (
    "DEFAULT_BASE_URL",
    "MARKETS",
    "ArchiveFile",
    "FetchError",
    "Fetched",
    "NotInArchiveError",
    "download_all",
    "plan_files",
    "read_zip",
)

DEFAULT_BASE_URL = "https://data.binance.vision"
MARKETS = {"spot": "spot", "um": "futures/um"}
# The archive's intervals.
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d")


class FetchError(CoinbtError):
    """A download failed: unreachable, refused, timed out, or not in the archive."""

    code = "fetch_failed"


class NotInArchiveError(FetchError):
    """The archive has no such file (404)."""

    code = "not_in_archive"


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: str  # relative to the base URL
    # The daily files to use instead while this (last month's) monthly file is not published yet.
    instead: tuple[ArchiveFile, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Fetched:
    file: ArchiveFile
    local: Path
    sha256: str
    downloaded: bool  # False: it was already in the cache


def plan_files(
    market: str, symbol: str, interval: str, start: date, end: date, today: date
) -> list[ArchiveFile]:
    """The archive files covering ``start`` to ``end`` (inclusive days): monthly files for the
    months before ``today``'s, daily files (up to yesterday) for ``today``'s month. Last month's
    file carries its daily files as a fallback: the archive publishes a monthly file some days
    after the month ends."""
    folder = f"data/{MARKETS[market]}"

    def daily(first: date, last: date) -> list[ArchiveFile]:
        files = []
        while first <= last:
            stem = f"{symbol}-{interval}-{first:%Y-%m-%d}"
            files.append(ArchiveFile(f"{folder}/daily/klines/{symbol}/{interval}/{stem}.zip"))
            first += timedelta(days=1)
        return files

    files: list[ArchiveFile] = []
    month = date(start.year, start.month, 1)
    this_month = date(today.year, today.month, 1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    while month <= end and month < this_month:
        stem = f"{symbol}-{interval}-{month:%Y-%m}"
        instead: tuple[ArchiveFile, ...] = ()
        if month == last_month:
            instead = tuple(daily(max(start, month), min(end, this_month - timedelta(days=1))))
        path = f"{folder}/monthly/klines/{symbol}/{interval}/{stem}.zip"
        files.append(ArchiveFile(path, instead))
        month = (month + timedelta(days=32)).replace(day=1)
    return files + daily(max(start, this_month), min(end, today - timedelta(days=1)))


async def download_all(
    base_url: str,
    files: list[ArchiveFile],
    cache: Path,
    *,
    jobs: int = 4,
    timeout_s: float = 30.0,
    attempts: int = 3,
    on_file: Callable[[int, int], None] | None = None,
) -> list[Fetched]:
    """Download (or find in ``cache``) and verify every file, ``jobs`` at a time, in order.

    Raises :class:`FetchError` for a file that cannot be had (404 names its URL) and
    :class:`DataError` for a checksum mismatch (the bad download is deleted)."""
    results: dict[int, list[Fetched]] = {}
    limiter = anyio.CapacityLimiter(max(1, jobs))
    timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
    base = base_url.rstrip("/")
    done = 0

    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        failures: list[CoinbtError] = []

        async def one(index: int, file: ArchiveFile) -> None:
            nonlocal done
            try:
                async with limiter:
                    try:
                        got = [await _fetch_one(session, base, file, cache, attempts)]
                    except NotInArchiveError:
                        if not file.instead:
                            raise
                        got = [
                            await _fetch_one(session, base, day, cache, attempts)
                            for day in file.instead
                        ]
                    results[index] = got
            except CoinbtError as e:  # the first failure stops the others (files already
                failures.append(e)  # verified stay in the cache for the rerun)
                tg.cancel_scope.cancel()
                return
            done += 1
            if on_file is not None:
                on_file(done, len(files))

        async with anyio.create_task_group() as tg:
            for index, file in enumerate(files):
                tg.start_soon(one, index, file)
        if failures:
            raise failures[0]
    return [fetched for i in range(len(files)) for fetched in results[i]]


async def _fetch_one(
    session: aiohttp.ClientSession, base: str, file: ArchiveFile, cache: Path, attempts: int
) -> Fetched:
    local = cache / file.path
    await anyio.Path(local.parent).mkdir(parents=True, exist_ok=True)
    expected = await _checksum(session, f"{base}/{file.path}.CHECKSUM", file, attempts)
    if await anyio.Path(local).exists():
        if await anyio.to_thread.run_sync(_sha256, local) == expected:
            return Fetched(file, local, expected, downloaded=False)
        await anyio.Path(local).unlink()
    part = local.with_name(local.name + ".part")
    last_error: BaseException | None = None
    for _ in range(attempts):
        try:
            await _download(session, f"{base}/{file.path}", part)
            break
        except FetchError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            last_error = e  # resume from what the .part holds
    else:
        raise FetchError(
            f"{base}/{file.path}: {_describe(last_error)} ({attempts} attempts; rerun to resume)"
        )
    actual = await anyio.to_thread.run_sync(_sha256, part)
    if actual != expected:
        await anyio.Path(part).unlink(missing_ok=True)
        raise DataError(
            f"{file.name}: checksum mismatch: its sha256 is {actual}, the archive's "
            f"{file.name}.CHECKSUM says {expected}; the download was deleted, nothing imported"
        )
    await anyio.Path(part).replace(local)
    return Fetched(file, local, expected, downloaded=True)


async def _checksum(
    session: aiohttp.ClientSession, url: str, file: ArchiveFile, attempts: int
) -> str:
    last_error: BaseException | None = None
    for _ in range(attempts):
        try:
            async with session.get(url) as response:
                _check_status(response, url.removesuffix(".CHECKSUM"))
                text = (await response.read()).decode("ascii", "replace")
            break
        except FetchError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            last_error = e
    else:
        raise FetchError(f"{url}: {_describe(last_error)} ({attempts} attempts)")
    digest = text.split()[0].lower() if text.split() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"{file.name}.CHECKSUM does not hold a sha256: {text[:80]!r}")
    return digest


async def _download(session: aiohttp.ClientSession, url: str, part: Path) -> None:
    have = (await anyio.Path(part).stat()).st_size if await anyio.Path(part).exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with session.get(url, headers=headers) as response:
        if response.status == 416:  # the .part is already whole
            return
        _check_status(response, url)
        append = bool(have) and response.status == 206
        async with await anyio.open_file(part, "ab" if append else "wb") as out:
            async for block in response.content.iter_any():
                await out.write(block)
        expected = response.content_length
        if expected is not None and response.status in (200, 206):
            size = (await anyio.Path(part).stat()).st_size
            want = expected + (have if append else 0)
            if size < want:
                raise aiohttp.ClientPayloadError(f"got {size} of {want} bytes")


def _check_status(response: aiohttp.ClientResponse, url: str) -> None:
    if response.status == 404:
        raise NotInArchiveError(
            f"not in the archive: {url} (404); check the symbol, the interval, the market and "
            "the dates (the archive starts when the symbol was listed)"
        )
    if response.status >= 400:
        raise aiohttp.ClientResponseError(
            response.request_info, (), status=response.status, message=response.reason or ""
        )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_zip(path: Path, name: str) -> Bars:
    """The bars of one archive zip (one CSV inside). :class:`DataError` naming the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
            if len(members) != 1:
                raise DataError(f"{name}: expected one CSV file inside, found {len(members)}")
            data = archive.read(members[0])
    except (zipfile.BadZipFile, OSError, EOFError, io.UnsupportedOperation) as e:
        raise DataError(f"{name}: not a readable zip archive ({e}); nothing imported") from e
    try:
        return parse_csv(data)
    except DataError as e:
        raise DataError(f"{name}: {e}") from e
