"""``coinbt backup``, ``coinbt backup list``, ``coinbt restore`` and ``coinbt migrate artifacts``.

Store URLs are ``s3://bucket/prefix`` (any S3-compatible endpoint: ``--s3-endpoint-url`` or
``COINBT_S3_ENDPOINT_URL``; credentials from the usual AWS variables and profiles) or a directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from coinbt.cli.log import add_db_argument
from coinbt.dburl import parse_db

__all__ = ("add_endpoint_argument", "add_migrate_artifacts", "register")


def add_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        metavar="URL",
        help="an S3-compatible endpoint, e.g. http://127.0.0.1:9000 for MinIO "
        "(default: $COINBT_S3_ENDPOINT_URL, then $AWS_ENDPOINT_URL_S3, then AWS)",
    )


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="back up the database to S3 or a directory (safe while the service runs)",
        description=(
            "Take a consistent snapshot of the SQLite database with SQLite's online backup API "
            "(safe while 'coinbt serve' writes to it), record its last log position and last "
            "hash, and upload it with a manifest to URL: s3://bucket/prefix or a directory. "
            "'coinbt backup list --to URL' lists the backups there."
        ),
        epilog="example: coinbt backup --db coinbt-data/coinbt.db --to s3://my-bucket/backups",
    )
    add_db_argument(backup)
    backup.add_argument(
        "--to",
        default=os.environ.get("COINBT_BACKUP_TO") or None,
        metavar="URL",
        help="where to: s3://bucket/prefix or a directory (default: $COINBT_BACKUP_TO)",
    )
    add_endpoint_argument(backup)
    backup.add_argument("--json", action="store_true", help="print one JSON object")
    backup.set_defaults(func=_backup)
    actions = backup.add_subparsers(metavar="ACTION", required=False)
    listing = actions.add_parser(
        "list",
        help="list the backups in a store, oldest first",
        description="List the complete backups at URL, oldest first.",
        epilog="example: coinbt backup list --to s3://my-bucket/backups",
    )
    listing.add_argument("--to", default=argparse.SUPPRESS, metavar="URL", help="the store")
    listing.add_argument("--s3-endpoint-url", default=argparse.SUPPRESS, metavar="URL")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=_backup_list)

    restore = subparsers.add_parser(
        "restore",
        help="restore the database from a backup, after checking its hash chain",
        description=(
            "Download a backup (the newest at URL, or the one URL names), check its sha256, walk "
            "its hash chain and compare the chain's last position and hash with the ones "
            "recorded at backup time; refuse any mismatch. An existing database is never "
            "replaced without --force; with it, the old file is kept beside the new one as "
            "<db>.before-restore-<time>. Stop the service first."
        ),
        epilog=("example: coinbt restore --from s3://my-bucket/backups --db coinbt-data/coinbt.db"),
    )
    restore.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="s3://bucket/prefix or a directory (newest backup), or .../<backup name>",
    )
    add_db_argument(restore)
    restore.add_argument(
        "--force", action="store_true", help="replace an existing database (keeping a copy)"
    )
    add_endpoint_argument(restore)
    restore.add_argument("--json", action="store_true", help="print one JSON object")
    restore.set_defaults(func=_restore)


def add_migrate_artifacts(migrate: argparse.ArgumentParser) -> None:
    """``coinbt migrate artifacts`` (``coinbt migrate`` itself lives in ``coinbt.cli.log``)."""
    actions = migrate.add_subparsers(metavar="ACTION", required=False)
    artifacts = actions.add_parser(
        "artifacts",
        help="move every stored artifact to another store (resumable)",
        description=(
            "Move the stored artifacts recorded in the database to the store at URL "
            "(s3://bucket/prefix, or a directory to come back from S3): copy each one, check "
            "its sha256, record its new location, then delete the old copy. Events are not "
            "rewritten (they name logical keys only). Progress is recorded per artifact: run it "
            "again to continue after an interruption. Then start the service with "
            "--artifacts URL so new artifacts go there too."
        ),
        epilog="example: coinbt migrate artifacts --db coinbt-data/coinbt.db --to s3://bkt/run",
    )
    artifacts.add_argument(
        "--db",
        type=parse_db,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="the SQLite database (default: $COINBT_DB or coinbt-data/coinbt.db)",
    )
    artifacts.add_argument("--to", required=True, metavar="URL", help="the target store")
    artifacts.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the data directory with the local artifacts/ (default: the database's directory)",
    )
    artifacts.add_argument(
        "--limit", type=int, default=None, metavar="N", help="move at most N artifacts this run"
    )
    artifacts.add_argument(
        "--keep-source", action="store_true", help="copy only: leave the old copies in place"
    )
    artifacts.add_argument(
        "--concurrency",
        type=int,
        default=8,
        metavar="N",
        help="artifacts in flight at once (default 8; an object store's latency is the limit)",
    )
    add_endpoint_argument(artifacts)
    artifacts.add_argument("--json", action="store_true", help="print one JSON object")
    artifacts.set_defaults(func=_migrate_artifacts)


def _sqlite_only(args: argparse.Namespace, command: str) -> None:
    """Backups, restores and artifact moves work on a SQLite file."""
    from coinbt.dburl import is_dsn
    from coinbt.errors import InvalidRequestError

    if is_dsn(getattr(args, "db", "")):
        raise InvalidRequestError(
            f"'coinbt {command}' works on a SQLite file; for PostgreSQL use its own tools "
            "(pg_dump, pg_basebackup) and docs/scale-out.md",
            field="--db",
        )


def _s3(args: argparse.Namespace) -> Any:
    from coinbt.artifacts import S3Options

    endpoint = getattr(args, "s3_endpoint_url", None)
    return S3Options(endpoint_url=endpoint) if endpoint else None


def _need_to(args: argparse.Namespace) -> str:
    from coinbt.errors import InvalidRequestError

    to: str | None = getattr(args, "to", None)
    if not to:
        raise InvalidRequestError("where to? give --to URL or set COINBT_BACKUP_TO", field="--to")
    return to


def _backup(args: argparse.Namespace) -> int:
    import anyio
    import msgspec

    from coinbt.artifacts import open_artifact_store
    from coinbt.backup import backup_database
    from coinbt.cli.log import _require

    _sqlite_only(args, "backup")
    to = _need_to(args)
    _require(args.db)

    async def run() -> Any:
        async with open_artifact_store(to, s3=_s3(args)) as store:
            return await backup_database(args.db, store)

    info = anyio.run(run)
    if args.json:
        print(msgspec.json.encode(info).decode())
    else:
        print(
            f"backed up {args.db} to {to.rstrip('/')}/{info.db_key}: position "
            f"{info.last_position:,}, last hash {info.last_hash or '-'}, {info.size:,} bytes"
        )
    return 0


def _backup_list(args: argparse.Namespace) -> int:
    import anyio
    import msgspec

    from coinbt.artifacts import open_artifact_store
    from coinbt.backup import scan_backups

    to = _need_to(args)

    async def run() -> Any:
        async with open_artifact_store(to, s3=_s3(args)) as store:
            return await scan_backups(store)

    infos, damaged = anyio.run(run)
    for backup in damaged:  # reported, never a reason to hide the intact ones
        print(f"coinbt: warning: {backup.error}", file=sys.stderr)
    if args.json:
        print(json.dumps([msgspec.to_builtins(i) for i in infos]))
        return 0
    if not infos:
        print(f"no backups in {to}")
    for i in infos:
        print(f"{i.name}  {i.created_at}  position {i.last_position:>10,}  {i.size:>12,} bytes")
    return 0


def _restore(args: argparse.Namespace) -> int:
    import anyio

    from coinbt.backup import open_backup_source, restore_database
    from coinbt.cli._progress import ProgressLine

    _sqlite_only(args, "restore")

    async def run(line: ProgressLine) -> Any:
        async with open_backup_source(args.source, _s3(args)) as (store, name):
            return await restore_database(
                store, args.db, name=name, force=args.force, progress=line.count
            )

    with ProgressLine("checking the backup's hash chain") as line:
        report = anyio.run(run, line)
    for backup in report.skipped:
        print(f"coinbt: warning: passed over {backup.name}: {backup.error}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "name": report.name,
                    "db": str(report.db),
                    "last_position": report.last_position,
                    "last_hash": report.last_hash,
                    "events": report.events,
                    "kept": None if report.kept is None else str(report.kept),
                    "skipped": [{"name": d.name, "error": d.error} for d in report.skipped],
                }
            )
        )
    else:
        print(
            f"restored {report.name} into {report.db}: {report.events:,} events verify, "
            f"ending at position {report.last_position:,} with the recorded hash"
        )
        if report.kept is not None:
            print(f"the previous database is kept at {report.kept}")
    return 0


def _migrate_artifacts(args: argparse.Namespace) -> int:
    import anyio

    from coinbt.artifacts.migrate import move_artifacts
    from coinbt.cli.log import _require

    _sqlite_only(args, "migrate artifacts")
    db: Path = args.db
    _require(db)
    from coinbt.cli._progress import ProgressLine
    from coinbt.errors import InvalidRequestError

    if args.limit is not None and args.limit < 0:
        raise InvalidRequestError("must be 0 or more", field="--limit")
    if not 1 <= args.concurrency <= 256:
        raise InvalidRequestError("must be from 1 to 256", field="--concurrency")

    async def run(line: ProgressLine) -> Any:
        return await move_artifacts(
            db,
            args.to,
            data_dir=args.data_dir,
            s3=_s3(args),
            limit=args.limit,
            keep_source=args.keep_source,
            concurrency=args.concurrency,
            progress=line.count,
        )

    with ProgressLine("moving artifacts", unit="artifacts") as line:
        report = anyio.run(run, line)
    if args.json:
        print(
            json.dumps(
                {
                    "target": report.target,
                    "moved": report.moved,
                    "already": report.already,
                    "pending": report.pending,
                    "missing": report.missing,
                    "damaged": report.damaged,
                    "complete": report.complete,
                }
            )
        )
    else:
        print(
            f"moved {report.moved:,} artifacts to {report.target} ({report.already:,} were "
            f"there already, {report.pending:,} still pending upload by the service)"
        )
        for key in report.missing:
            print(f"MISSING {key}: in no store")
        for key in report.damaged:
            print(f"DAMAGED {key}: its bytes do not match the recorded sha256; not moved")
        if not report.complete:
            print("stopped at --limit; run it again to continue")
    return 0 if report.ok else 1
