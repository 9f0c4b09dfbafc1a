"""``coinbt serve`` (``coinbt data`` is in ``coinbt.cli.data``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from coinbt import defaults
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
    serve.add_argument(
        "--host", default=defaults.HOST, help=f"address to listen on ({defaults.HOST})"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=defaults.PORT,
        help=f"port ({defaults.PORT}; 0 picks a free one)",
    )
    serve.add_argument(
        "--allowed-hosts",
        default=os.environ.get("COINBT_ALLOWED_HOSTS") or "",
        metavar="NAMES",
        help="comma-separated host names the server answers to besides localhost, 127.0.0.1, "
        "::1 and --host; other Host headers get 421 (DNS rebinding); '*' allows any "
        "(default: $COINBT_ALLOWED_HOSTS; docs/api.md)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"worker processes (default: the number of cores, {defaults.worker_count()} here)",
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
        "--queue-capacity",
        type=int,
        default=defaults.QUEUE_CAPACITY,
        help=f"queued tasks before 429 ({defaults.QUEUE_CAPACITY})",
    )
    serve.add_argument(
        "--max-attempts",
        type=int,
        default=defaults.MAX_ATTEMPTS,
        help=f"runs of a task interrupted by restarts ({defaults.MAX_ATTEMPTS})",
    )
    serve.add_argument(
        "--heartbeat",
        type=float,
        default=defaults.HEARTBEAT_S,
        metavar="SECONDS",
        help="on PostgreSQL: how often to look for stopped processes (to re-queue their tasks) "
        f"and whether to take over writing the read models ({defaults.HEARTBEAT_S:g})",
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
    serve.set_defaults(func=_serve, memory_ok=True)


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

    from coinbt.dburl import is_memory
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
    if args.backup_to is not None and is_memory(args.db):
        raise InvalidRequestError("--db memory: keeps nothing to back up", field="--backup-to")
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
