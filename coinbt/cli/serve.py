"""``coinbt serve`` and ``coinbt data import|list``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from coinbt.cli.log import add_db_argument
from coinbt.cli.storage import add_endpoint_argument

__all__ = ("register",)


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the service: HTTP API, dashboard, workers (embedded SQLite by default)",
        description=(
            "Run coinbt: the HTTP API and dashboard, the task manager and the backtest workers, "
            "in one process on one SQLite file, or on a PostgreSQL database that several coinbt "
            "serve processes (on several hosts) share (--db postgresql://...; "
            "docs/scale-out.md). Listens on 127.0.0.1 unless told otherwise; a "
            "non-loopback --host needs an API token in COINBT_API_TOKEN (clients then send "
            "'Authorization: Bearer <token>'). Ctrl-C or SIGTERM stops it cleanly: running "
            "backtests get a grace period, the rest are re-queued at the next start (or, on a "
            "shared database, by another process)."
        ),
        epilog="examples: coinbt serve --db coinbt-data/coinbt.db --port 8000 --demo; "
        "coinbt serve --db postgresql://coinbt@db.internal/coinbt --data-dir /shared/coinbt",
    )
    add_db_argument(serve)
    add_data_dir_argument(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    serve.add_argument(
        "--allowed-hosts",
        default=os.environ.get("COINBT_ALLOWED_HOSTS") or "",
        metavar="NAMES",
        help="comma-separated host names the server answers to besides localhost, 127.0.0.1, "
        "::1 and --host; other Host headers get 421 (DNS rebinding); '*' allows any "
        "(default: $COINBT_ALLOWED_HOSTS; docs/api.md)",
    )
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: the number of cores)"
    )
    serve.add_argument(
        "--executor",
        default=os.environ.get("COINBT_EXECUTOR") or "local",
        metavar="URL",
        help="where backtests run: local (worker processes, the default), dask://HOST:PORT (a "
        "Dask scheduler) or dask+local://N (a local Dask cluster); --workers is how many run at "
        "once (default: $COINBT_EXECUTOR, else local; docs/distributed.md)",
    )
    serve.add_argument(
        "--queue-capacity", type=int, default=10_000, help="queued tasks before 429 (10000)"
    )
    serve.add_argument(
        "--max-attempts", type=int, default=3, help="runs of a task interrupted by restarts (3)"
    )
    serve.add_argument(
        "--heartbeat",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="on PostgreSQL: how often to look for stopped processes (to re-queue their tasks) "
        "and whether to take over writing the read models (2)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="submit a few demo backtests if the log is empty"
    )
    serve.add_argument(
        "--artifacts",
        default=os.environ.get("COINBT_ARTIFACTS") or None,
        metavar="URL",
        help="where run artifacts go: s3://bucket/prefix or a directory "
        "(default: $COINBT_ARTIFACTS, else artifacts/ in the data directory)",
    )
    add_endpoint_argument(serve)
    serve.add_argument(
        "--backup-to",
        default=os.environ.get("COINBT_BACKUP_TO") or None,
        metavar="URL",
        help="take periodic database backups to s3://bucket/prefix or a directory "
        "(default: $COINBT_BACKUP_TO)",
    )
    serve.add_argument(
        "--backup-every",
        type=float,
        default=_float_env("COINBT_BACKUP_EVERY"),
        metavar="SECONDS",
        help="the backup interval (default: $COINBT_BACKUP_EVERY; needs --backup-to)",
    )
    serve.add_argument(
        "--strategies",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="load plugin strategies from the *.py modules in DIR (repeatable; added to "
        "$COINBT_STRATEGY_PATH, which the worker processes inherit; docs/strategies.md)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    data = subparsers.add_parser(
        "data",
        help="import and list market datasets",
        description="Datasets are imported once from CSV and never change.",
    )
    actions = data.add_subparsers(metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import",
        help="import a CSV file as a named dataset",
        description=(
            "Import market data from a CSV file. Accepted: a header "
            "'timestamp,open,high,low,close,volume' (timestamps ISO-8601 UTC or epoch ms or s), "
            "or a Binance kline CSV (no header, 12 columns). Every row is checked: sorted unique "
            "timestamps, positive prices, high >= low; an error names the row."
        ),
        epilog="example: coinbt data import BTCUSDT-1m.csv --name BTCUSDT-1m",
    )
    imp.add_argument("csv", type=Path, metavar="CSV", help="the file to import")
    imp.add_argument("--name", required=True, help="the dataset's name, e.g. BTCUSDT-1m")
    imp.add_argument("--symbol", help="its symbol (default: the name up to the first '-')")
    add_db_argument(imp)
    add_data_dir_argument(imp)
    imp.add_argument("--json", action="store_true", help="print one JSON object")
    imp.set_defaults(func=_data_import)
    lst = actions.add_parser("list", help="list imported datasets")
    add_db_argument(lst)
    add_data_dir_argument(lst)
    lst.add_argument("--json", action="store_true", help="print a JSON list")
    lst.set_defaults(func=_data_list)


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ["COINBT_DATA_DIR"]) if os.environ.get("COINBT_DATA_DIR") else None,
        metavar="DIR",
        help="datasets, staged and local artifacts (default: $COINBT_DATA_DIR, else the SQLite "
        "file's directory, or ./coinbt-data with PostgreSQL; shared storage for several hosts)",
    )


def _float_env(name: str) -> float | None:
    value = os.environ.get(name)
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _serve(args: argparse.Namespace) -> int:
    import anyio

    from coinbt.errors import InvalidRequestError
    from coinbt.runtime import Config
    from coinbt.server import ServeOptions, ready_message, serve

    if not 0 <= args.port <= 65535:
        raise InvalidRequestError("must be 0-65535", field="--port")
    if args.workers is not None and args.workers < 0:
        raise InvalidRequestError("must be 0 or more", field="--workers")
    if not args.heartbeat > 0:
        raise InvalidRequestError("must be a positive number of seconds", field="--heartbeat")
    if args.backup_every is not None and not args.backup_every > 0:
        raise InvalidRequestError("must be a positive number of seconds", field="--backup-every")
    if (args.backup_every is None) != (args.backup_to is None):
        raise InvalidRequestError(
            "periodic backups need both --backup-to URL and --backup-every SECONDS",
            field="--backup-every" if args.backup_every is None else "--backup-to",
        )
    _load_strategies(args.strategies)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from coinbt.artifacts import S3Options, parse_store_url

    for url in (args.artifacts, args.backup_to):
        if url is not None:
            parse_store_url(url)  # a bad URL is refused before anything starts
    executor, workers = _executor(args.executor, args.workers)
    config = Config(
        db=args.db,
        data_dir=args.data_dir,
        heartbeat_s=args.heartbeat,
        workers=workers,
        executor=executor,
        queue_capacity=args.queue_capacity,
        max_attempts=args.max_attempts,
        artifacts_url=args.artifacts,
        s3=S3Options(endpoint_url=args.s3_endpoint_url) if args.s3_endpoint_url else None,
        backup_to=args.backup_to,
        backup_every_s=args.backup_every,
    )
    options = ServeOptions(
        host=args.host,
        port=args.port,
        token=os.environ.get("COINBT_API_TOKEN") or None,
        demo=args.demo,
        log_level=args.log_level,
        allowed_hosts=tuple(h.strip() for h in args.allowed_hosts.split(",") if h.strip()),
    )
    anyio.run(lambda: serve(config, options, on_ready=ready_message))
    return 0


def _load_strategies(directories: list[Path]) -> None:
    """Put ``--strategies`` directories on ``COINBT_STRATEGY_PATH`` (this process and the worker
    processes it starts read it) and load every plugin now: one that cannot load stops the
    start with exit 2, naming its file."""
    from coinbt.engine.plugins import PATH_VARIABLE, plugin_errors, plugins, reset_plugins
    from coinbt.errors import InvalidRequestError

    for directory in directories:
        if not directory.is_dir():
            raise InvalidRequestError(f"{directory} is not a directory", field="--strategies")
    if directories:
        paths = [str(d.resolve()) for d in directories]
        old = os.environ.get(PATH_VARIABLE)
        os.environ[PATH_VARIABLE] = os.pathsep.join([*paths, *([old] if old else [])])
    reset_plugins()
    found = plugins()
    errors = plugin_errors()
    if errors:
        first = errors[0]
        raise InvalidRequestError(
            f"cannot load a plugin strategy from {first.origin}: {first.message}",
            field="--strategies",
        )
    if found:
        print(f"coinbt: plugin strategies: {', '.join(sorted(found))}", file=sys.stderr)


def _executor(url: str, workers: int | None) -> tuple[Any, int | None]:
    """The ``Config.executor`` factory for ``--executor``, and the worker count to use."""
    from coinbt.errors import InvalidRequestError
    from coinbt.executor.local import open_local_executor

    if url == "local":
        return open_local_executor, workers
    if not url.startswith(("dask://", "dask+local://")):
        raise InvalidRequestError(
            f"{url!r}: expected local, dask://HOST:PORT or dask+local://N", field="--executor"
        )
    try:
        from coinbt.executor.dask import executor_factory, parse_dask_target
    except ImportError:
        raise InvalidRequestError(
            "Dask is not installed: pip install 'coinbt[distributed]'", field="--executor"
        ) from None
    try:
        _, count = parse_dask_target(url)
        factory = executor_factory(url)
    except ValueError as e:
        raise InvalidRequestError(str(e), field="--executor") from None
    return factory, workers if workers is not None else count


def _data_dir(args: argparse.Namespace) -> Path:
    from coinbt.dburl import is_dsn

    if args.data_dir is not None:
        return Path(args.data_dir)
    return Path("coinbt-data") if is_dsn(args.db) else Path(args.db).parent


async def _with_catalog(args: argparse.Namespace, use: Any) -> Any:
    """Run ``await use(catalog)`` on the catalogue of ``--db`` (migrated first)."""
    from coinbt.dburl import is_dsn

    data_dir = _data_dir(args)
    if not is_dsn(args.db):
        import anyio

        from coinbt.datasets import DatasetCatalog
        from coinbt.store.migrations import apply_migrations

        await anyio.to_thread.run_sync(apply_migrations, args.db)
        return await use(DatasetCatalog(Path(args.db), data_dir))
    from coinbt.backend import open_postgres_catalog

    async with open_postgres_catalog(args.db, data_dir) as catalog:
        return await use(catalog)


def _data_import(args: argparse.Namespace) -> int:
    import json

    import anyio
    import msgspec

    from coinbt.errors import DataError

    if not args.csv.is_file():
        raise DataError(f"no file at {args.csv}")
    data = args.csv.read_bytes()

    async def use(catalog: Any) -> Any:
        return await catalog.import_bytes(args.name, data, symbol=args.symbol, source=args.csv.name)

    info = anyio.run(_with_catalog, args, use)
    if args.json:
        print(json.dumps(msgspec.to_builtins(info)))
    else:
        print(f"imported {info.name} ({info.symbol}): {info.rows:,} bars, sha256 {info.sha256}")
    return 0


def _data_list(args: argparse.Namespace) -> int:
    import json

    import anyio
    import msgspec

    async def use(catalog: Any) -> Any:
        return await catalog.all()

    infos = anyio.run(_with_catalog, args, use)
    if args.json:
        print(json.dumps([msgspec.to_builtins(i) for i in infos]))
        return 0
    if not infos:
        print("no datasets yet: coinbt data import FILE.csv --name NAME")
    for i in infos:
        print(f"{i.name:<24} {i.symbol:<12} {i.rows:>10,} bars  every {i.interval_ms // 1000}s")
    return 0
