"""``coinbt data``: import, fetch, list, info, resample, export and retire datasets (docs/data.md).

Local commands work on the catalogue of ``--db`` and say which database file they use; they
refuse to create a database that does not exist yet (``--create`` does), so an import never lands
silently in a fresh file beside a service that reads another one. ``data import --url`` sends the
file to a running server instead (``POST /datasets``, streamed, with ``$COINBT_API_TOKEN``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from coinbt.cli.log import add_db_argument
from coinbt.cli.serve import add_data_dir_argument
from coinbt.errors import CoinbtError, DataError, InvalidRequestError

__all__ = ("register",)

_DAY = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?")


def register(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data",
        help="fetch, import, inspect, resample and export market datasets",
        description="Datasets are versioned and never change once imported (docs/data.md).",
        epilog="example: coinbt data import btc.csv --name BTCUSDT-1h; coinbt data list",
    )
    actions = data.add_subparsers(metavar="ACTION", required=True)

    imp = actions.add_parser(
        "import",
        help="import a CSV file as a named dataset",
        description=(
            "Import market data from a CSV file. Accepted: a header naming the time column "
            "(timestamp, date, time, datetime or open_time, any case) and open, high, low, "
            "close, volume; a Binance kline CSV (no header, 12 columns); six columns without a "
            "header; ccxt's list of lists. Timestamps ISO-8601 (UTC unless zoned) or epoch s, "
            "ms, us or ns. Every row is checked (sorted unique timestamps, positive prices, "
            "high >= low); an error names the row. Gaps are reported (--strict refuses them)."
        ),
        epilog="examples: coinbt data import examples/SAMPLE-1h.csv --name SAMPLE-1h --create; "
        "coinbt data import btc.csv --name BTCUSDT-1h --url http://127.0.0.1:8000",
    )
    imp.add_argument("csv", type=Path, metavar="CSV", help="the file to import")
    imp.add_argument("--name", required=True, help="the dataset's name, e.g. BTCUSDT-1m")
    imp.add_argument("--symbol", help="its symbol (default: the name up to the first '-')")
    _add_version_flags(imp)
    _add_catalog_arguments(imp)
    imp.add_argument(
        "--url",
        help="import into the running server at URL instead (POST /datasets; token from "
        "$COINBT_API_TOKEN or --token)",
    )
    imp.add_argument("--token", help="API token for --url (default: $COINBT_API_TOKEN)")
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=_import)

    fetch = actions.add_parser(
        "fetch",
        help="download klines from Binance's public archive and import them",
        description=(
            "Download Binance's public kline archive (monthly zip files; daily ones for the "
            "current month), check each file against its published .CHECKSUM (sha256), and "
            "import the bars as a dataset named SYMBOL-INTERVAL (or --name). Downloads are "
            "cached under the data directory: a rerun after an interruption fetches only what "
            "is missing, and a half-downloaded file resumes."
        ),
        epilog="example: coinbt data fetch binance BTCUSDT 1m --from 2024-01 --to 2024-06",
    )
    fetch.add_argument("exchange", choices=["binance"], help="the archive (binance)")
    fetch.add_argument("symbol", help="e.g. BTCUSDT")
    fetch.add_argument("interval", help="e.g. 1m, 1h, 1d")
    fetch.add_argument("--from", dest="start", metavar="YYYY-MM[-DD]", help="first day")
    fetch.add_argument(
        "--to", dest="end", metavar="YYYY-MM[-DD]", help="last day, inclusive (default: yesterday)"
    )
    fetch.add_argument(
        "--market",
        choices=["spot", "um"],
        default="spot",
        help="spot (default) or um (USD-M futures)",
    )
    fetch.add_argument("--name", help="the dataset's name (default: SYMBOL-INTERVAL)")
    _add_version_flags(fetch)
    fetch.add_argument(
        "--base-url",
        default=os.environ.get("COINBT_BINANCE_URL") or None,
        metavar="URL",
        help="the archive's base URL (default: $COINBT_BINANCE_URL, else "
        "https://data.binance.vision)",
    )
    fetch.add_argument("--jobs", type=int, default=4, help="downloads in flight (4)")
    fetch.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on a connection silent this long (30; retried 3 times)",
    )
    fetch.add_argument("--today", help=argparse.SUPPRESS)  # injected by tests: YYYY-MM-DD
    _add_catalog_arguments(fetch)
    fetch.add_argument("--json", action="store_true", help="print one JSON object")
    fetch.set_defaults(func=_fetch)

    lst = actions.add_parser(
        "list",
        help="list datasets (the latest version of each)",
        epilog="example: coinbt data list --all --json",
    )
    _add_catalog_arguments(lst, create=False)
    lst.add_argument("--all", action="store_true", help="retired datasets too")
    lst.add_argument("--json", action="store_true", help="print a JSON list")
    lst.set_defaults(func=_list)

    info = actions.add_parser(
        "info",
        help="range, rows, interval, gaps and provenance of a dataset",
        epilog="example: coinbt data info BTCUSDT-1m",
    )
    info.add_argument("name", help="the dataset")
    info.add_argument("--version", type=int, help="a version (default: the latest)")
    info.add_argument("--gaps", type=int, default=5, metavar="N", help="list the N largest gaps")
    _add_catalog_arguments(info, create=False)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)

    resample = actions.add_parser(
        "resample",
        help="derive a coarser dataset (1m -> 1h...)",
        description=(
            "Aggregate a dataset to a coarser interval as a new dataset: open of the first bar, "
            "highest high, lowest low, close of the last bar, summed volume; buckets aligned to "
            "UTC (weeks from Monday); gaps stay gaps."
        ),
        epilog="example: coinbt data resample BTCUSDT-1m --to 1h",
    )
    resample.add_argument("name", help="the dataset")
    resample.add_argument("--to", dest="interval", required=True, help="e.g. 5m, 1h, 1d, 1w")
    resample.add_argument("--name", dest="new_name", help="default: NAME with the interval swapped")
    resample.add_argument("--version", type=int, help="of the source (default: the latest)")
    _add_catalog_arguments(resample, create=False)
    resample.add_argument("--json", action="store_true", help="print one JSON object")
    resample.set_defaults(func=_resample)

    export = actions.add_parser(
        "export",
        help="write a dataset as CSV (timestamp,open,high,low,close,volume)",
        epilog="example: coinbt data export BTCUSDT-1h -o btc.csv",
    )
    export.add_argument("name", help="the dataset")
    export.add_argument("--version", type=int, help="a version (default: the latest)")
    export.add_argument("-o", "--output", type=Path, help="the file (default: standard output)")
    _add_catalog_arguments(export, create=False)
    export.set_defaults(func=_export)

    retire = actions.add_parser(
        "retire",
        help="hide a dataset from listings and new tasks (kept for the tasks that used it)",
        epilog="example: coinbt data retire BTCUSDT-1m-old",
    )
    retire.add_argument("name", help="the dataset")
    _add_catalog_arguments(retire, create=False)
    retire.set_defaults(func=_retire)


def _add_version_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--update",
        action="store_true",
        help="append the bars newer than the dataset's latest version as a new version",
    )
    parser.add_argument("--strict", action="store_true", help="refuse data with gaps")


def _add_catalog_arguments(parser: argparse.ArgumentParser, *, create: bool = True) -> None:
    add_db_argument(parser)
    add_data_dir_argument(parser)
    if create:
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the database if it does not exist (otherwise that is an error: the "
            "service may be using another one)",
        )


# --- the catalogue of --db ------------------------------------------------------------------


def _data_dir(args: argparse.Namespace) -> Path:
    from coinbt.dburl import is_dsn

    if args.data_dir is not None:
        return Path(args.data_dir)
    return Path("coinbt-data") if is_dsn(args.db) else Path(args.db).parent


def _where(args: argparse.Namespace) -> str:
    from coinbt.dburl import is_dsn

    if is_dsn(args.db):
        from coinbt.backends.postgres.schema import describe

        return str(describe(args.db))
    return str(Path(args.db).resolve())


async def _with_catalog(args: argparse.Namespace, use: Any) -> Any:
    """Run ``await use(catalog)`` on the catalogue of ``--db`` (migrated first)."""
    import anyio

    from coinbt.dburl import is_dsn

    data_dir = _data_dir(args)
    if not is_dsn(args.db):
        from coinbt.backends.sqlite.datasets import DatasetCatalog
        from coinbt.backends.sqlite.migrations import apply_migrations

        db = Path(args.db)
        await anyio.to_thread.run_sync(apply_migrations, db)
        return await use(DatasetCatalog(db, data_dir))
    from coinbt.backend import open_postgres_catalog

    async with open_postgres_catalog(args.db, data_dir) as catalog:
        return await use(catalog)


def _run(args: argparse.Namespace, use: Any) -> Any:
    import anyio

    from coinbt.dburl import is_dsn

    if not is_dsn(args.db):
        db = Path(args.db)
        if not db.exists():
            if not getattr(args, "create", False):
                raise InvalidRequestError(
                    f"no database at {db.resolve()}: give the service's --db (or $COINBT_DB), "
                    "import into a running server with --url, or pass --create to start a new "
                    "one",
                    field="--db",
                )
            db.parent.mkdir(parents=True, exist_ok=True)

    return anyio.run(_with_catalog, args, use)


def _show(info: Any, args: argparse.Namespace, verb: str) -> None:
    import msgspec

    from coinbt.datasets import iso_ms

    if args.json:
        print(json.dumps({**msgspec.to_builtins(info), "db": _where(args)}))
        return
    print(
        f"{verb} {info.name} version {info.version} ({info.symbol}): {info.rows:,} bars "
        f"{iso_ms(info.start_ms)} to {iso_ms(info.end_ms)}, every {_interval(info.interval_ms)}"
    )
    print(f"  in {_where(args)}")
    _warn_gaps(info)


def _warn_gaps(info: Any) -> None:
    from coinbt.datasets import iso_ms

    gaps = info.gaps
    if gaps.count:
        print(
            f"coinbt: warning: {gaps.count:,} gap(s), {gaps.missing:,} bar(s) missing; the "
            f"largest is {_interval(gaps.largest_ms)} after {iso_ms(gaps.at_ms)} "
            f"(coinbt data info {info.name}; --strict refuses gaps)",
            file=sys.stderr,
        )


def _interval(ms: int) -> str:
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms / 1000:g}s"


# --- commands ---------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    from coinbt.datasets import check_import

    check_import(args.name, args.symbol)
    if not args.csv.is_file():
        raise DataError(f"no file at {args.csv}")
    if args.url:
        return _import_remote(args)

    async def use(catalog: Any) -> Any:
        import anyio

        async def chunks() -> Any:
            async with await anyio.open_file(args.csv, "rb") as f:
                while block := await f.read(1 << 20):
                    yield block

        return await catalog.import_stream(
            args.name,
            chunks(),
            symbol=args.symbol,
            source=args.csv.name,
            update=args.update,
            strict=args.strict,
        )

    _show(_run(args, use), args, "imported")
    return 0


def _import_remote(args: argparse.Namespace) -> int:
    import urllib.parse

    from coinbt.cli.client import ApiClient

    query = {"name": args.name, **({"symbol": args.symbol} if args.symbol else {})}
    query.update({k: "1" for k in ("update", "strict") if getattr(args, k)})
    client = ApiClient(args.url, args.token or os.environ.get("COINBT_API_TOKEN"), timeout=300)
    with open(args.csv, "rb") as f:
        out = client.upload(
            f"/datasets?{urllib.parse.urlencode(query)}", f, args.csv.stat().st_size, "text/csv"
        )
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"imported {out['name']} version {out.get('version', 1)} ({out['symbol']}): "
        f"{out['rows']:,} bars {out['start']} to {out['end']}, into {args.url}"
    )
    gaps = out.get("gaps") or {}
    if gaps.get("count"):
        print(f"coinbt: warning: {gaps['count']:,} gap(s) (--strict refuses gaps)", file=sys.stderr)
    return 0


def _day(text: str, field: str, end: bool) -> date:
    match = _DAY.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        year, month, day = int(match[1]), int(match[2]), match[3]
        if day is not None:
            return date(year, month, int(day))
        first = date(year, month, 1)
    except ValueError:
        raise InvalidRequestError(
            f"expected YYYY-MM or YYYY-MM-DD, got {text!r}", field=field
        ) from None
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1) if end else first


def _fetch(args: argparse.Namespace) -> int:
    symbol = args.symbol.upper()
    if not re.fullmatch(r"[A-Z0-9]{2,30}", symbol):
        raise InvalidRequestError(
            f"expected letters and digits like BTCUSDT, got {args.symbol!r}", field="SYMBOL"
        )
    from coinbt.data.binance import INTERVALS

    if args.interval not in INTERVALS:
        raise InvalidRequestError(
            f"the archive has {', '.join(INTERVALS)}; got {args.interval!r}", field="INTERVAL"
        )
    if not 1 <= args.jobs <= 32:
        raise InvalidRequestError("must be 1-32", field="--jobs")
    if not 0 < args.timeout <= 3600:
        raise InvalidRequestError(
            "must be a positive number of seconds (at most 3600)", field="--timeout"
        )
    name = args.name or f"{symbol}-{args.interval}"
    from coinbt.datasets import check_import

    check_import(name, None)
    today = datetime.now(UTC).date() if args.today is None else _day(args.today, "--today", False)
    yesterday = today - timedelta(days=1)
    end = yesterday if args.end is None else min(_day(args.end, "--to", True), yesterday)
    if args.start is None and not args.update:
        raise InvalidRequestError("give the first month or day (or use --update)", field="--from")
    if args.start is not None:
        start = _day(args.start, "--from", False)
        if start > yesterday:
            raise InvalidRequestError(
                f"{start} is not in the archive yet (it ends yesterday, {yesterday})",
                field="--from",
            )
        if start > end:
            raise InvalidRequestError("must not be after --to", field="--from")
    base_url = args.base_url or "https://data.binance.vision"
    if not base_url.startswith(("http://", "https://")):
        raise InvalidRequestError(f"expected an http(s) URL, got {base_url!r}", field="--base-url")

    async def use(catalog: Any) -> Any:
        from coinbt.cli._progress import ProgressLine
        from coinbt.data.binance import download_all, plan_files, read_zip
        from coinbt.datasets import SourceFile

        first = start if args.start is not None else None
        if first is None:  # --update without --from: from the latest version's last day
            latest = await catalog.get(name)
            first = datetime.fromtimestamp(latest.end_ms / 1000, UTC).date()
        files = plan_files(args.market, symbol, args.interval, first, end, today)
        if not files:
            raise InvalidRequestError("no archive files in that range", field="--from")
        cache = catalog.data_dir / "downloads" / "binance"
        with ProgressLine(f"fetching {name}", unit="files") as progress:
            fetched = await download_all(
                base_url,
                files,
                cache,
                jobs=args.jobs,
                timeout_s=args.timeout,
                on_file=progress.count,
            )
        lo = int(datetime(first.year, first.month, first.day, tzinfo=UTC).timestamp() * 1000)
        hi = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() * 1000) + 86_400_000

        def bars() -> Any:
            for item in fetched:
                piece = read_zip(item.local, item.file.name)
                yield piece.slice(lo, hi - 1)

        downloaded = sum(item.downloaded for item in fetched)
        info = await catalog.import_bars(
            name,
            bars(),
            symbol=symbol,
            source=f"binance {args.market} {symbol} {args.interval}",
            provenance=[
                SourceFile(file=f"{base_url.rstrip('/')}/{i.file.path}", sha256=i.sha256)
                for i in fetched
            ],
            update=args.update,
            strict=args.strict,
        )
        return info, len(fetched), downloaded

    info, count, downloaded = _run(args, use)
    if not args.json:
        print(
            f"{count} archive file(s), {downloaded} downloaded, {count - downloaded} from the "
            "cache; every sha256 matched its CHECKSUM"
        )
    _show(info, args, "fetched")
    return 0


def _list(args: argparse.Namespace) -> int:
    import msgspec

    from coinbt.datasets import iso_ms

    async def use(catalog: Any) -> Any:
        return await catalog.listing(include_retired=args.all)

    listing = _run(args, use)
    for skipped in listing.skipped:
        print(f"coinbt: warning: skipped {skipped.name!r}: {skipped.reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([msgspec.to_builtins(i) for i in listing.datasets]))
        return 0
    if not listing.datasets:
        print("no datasets yet: coinbt data import FILE.csv --name NAME")
    for i in listing.datasets:
        retired = "  (retired)" if i.retired_at is not None else ""
        print(
            f"{i.name:<24} v{i.version:<3} {i.symbol:<10} {i.rows:>10,} bars  every "
            f"{_interval(i.interval_ms):<4} {iso_ms(i.start_ms)} to {iso_ms(i.end_ms)}  "
            f"gaps {i.gaps.count}{retired}"
        )
    return 0


def _load(args: argparse.Namespace, include_retired: bool = True) -> Any:
    """The record and the bars of NAME (--version)."""

    async def use(catalog: Any) -> Any:
        import anyio

        from coinbt.engine import load_bars

        info = await catalog.get(args.name, args.version, include_retired=include_retired)
        bars = await anyio.to_thread.run_sync(load_bars, catalog.path_of(info))
        return info, bars

    return _run(args, use)


def _info(args: argparse.Namespace) -> int:
    import msgspec

    from coinbt.data.gaps import find_gaps
    from coinbt.datasets import iso_ms

    if args.version is not None and args.version < 1:
        raise InvalidRequestError("must be 1 or more", field="--version")
    if not 0 <= args.gaps <= 10_000:
        raise InvalidRequestError("must be 0-10000", field="--gaps")
    info, bars = _load(args)
    largest = find_gaps(bars.ts, info.interval_ms, args.gaps)
    if args.json:
        out = msgspec.to_builtins(info)
        out["largest_gaps"] = msgspec.to_builtins(largest)
        print(json.dumps(out))
        return 0
    print(f"{info.name} version {info.version}" + ("  (retired)" if info.retired_at else ""))
    print(f"  symbol    {info.symbol}")
    print(f"  range     {iso_ms(info.start_ms)} to {iso_ms(info.end_ms)}")
    print(f"  rows      {info.rows:,}")
    print(f"  interval  {_interval(info.interval_ms)}")
    print(f"  gaps      {info.gaps.count:,} ({info.gaps.missing:,} bars missing)")
    for gap in largest:
        print(
            f"            {iso_ms(gap.after_ms)} -> {iso_ms(gap.before_ms)}  "
            f"{gap.missing:,} bars missing"
        )
    print(f"  sha256    {info.sha256}")
    print(f"  source    {info.source}")
    for item in info.provenance:
        print(f"            {item.file}  sha256 {item.sha256}")
    return 0


def _resample(args: argparse.Namespace) -> int:
    from coinbt.engine import parse_interval

    try:
        target = parse_interval(args.interval)
    except CoinbtError as e:
        raise InvalidRequestError(str(e).split(": ", 1)[-1], field="--to") from None
    if args.version is not None and args.version < 1:
        raise InvalidRequestError("must be 1 or more", field="--version")
    new_name = args.new_name or _renamed(args.name, args.interval)
    from coinbt.datasets import check_import

    try:
        check_import(new_name, None)
    except CoinbtError as e:
        raise InvalidRequestError(str(e).split(": ", 1)[-1], field="--name") from None

    async def use(catalog: Any) -> Any:
        import anyio

        from coinbt.data.resample import resample
        from coinbt.datasets import SourceFile
        from coinbt.engine import load_bars

        source = await catalog.get(args.name, args.version)
        bars = await anyio.to_thread.run_sync(load_bars, catalog.path_of(source))
        try:
            coarse = resample(bars, target)
        except DataError as e:
            raise InvalidRequestError(str(e), field="--to") from None
        return await catalog.import_bars(
            new_name,
            [coarse],
            symbol=source.symbol,
            source=f"resample {source.name} v{source.version} to {args.interval}",
            provenance=[
                SourceFile(file=f"dataset {source.name} v{source.version}", sha256=source.sha256)
            ],
        )

    _show(_run(args, use), args, "resampled into")
    return 0


def _renamed(name: str, interval: str) -> str:
    head, sep, tail = name.rpartition("-")
    if sep and re.fullmatch(r"\d+(ms|s|m|h|d|w)", tail):
        return f"{head}-{interval}"
    return f"{name}-{interval}"


def _export(args: argparse.Namespace) -> int:
    if args.version is not None and args.version < 1:
        raise InvalidRequestError("must be 1 or more", field="--version")
    _, bars = _load(args)
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        out.write("timestamp,open,high,low,close,volume\n")
        step = 100_000
        columns = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
        for lo in range(0, len(bars), step):
            block = [c[lo : lo + step].tolist() for c in columns]
            out.writelines(
                f"{t},{o!r},{h!r},{low!r},{c!r},{v!r}\n"
                for t, o, h, low, c, v in zip(*block, strict=True)
            )
    finally:
        if args.output:
            out.close()
    return 0


def _retire(args: argparse.Namespace) -> int:
    async def use(catalog: Any) -> Any:
        return await catalog.retire(args.name)

    info = _run(args, use)
    print(
        f"retired {info.name} (versions 1-{info.version}): hidden from listings and new tasks, "
        f"kept for the tasks that used it; in {_where(args)}"
    )
    return 0
