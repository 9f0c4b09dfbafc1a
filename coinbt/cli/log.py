"""Commands over the event log: ``replay``, ``audit verify|show``, ``migrate`` (and, from
``coinbt.cli.storage``, ``migrate artifacts``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coinbt.dburl import describe_db, is_dsn, parse_db

if TYPE_CHECKING:
    from coinbt.store.base import Progress

__all__ = ("DEFAULT_DB", "add_db_argument", "register")

DEFAULT_DB = "coinbt-data/coinbt.db"


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=parse_db,
        default=parse_db(os.environ.get("COINBT_DB", DEFAULT_DB)),
        metavar="PATH|DSN",
        help=f"the SQLite database, or a postgresql://user@host/db DSN; coinbt serve also "
        f"takes memory: (nothing kept) (default: $COINBT_DB or {DEFAULT_DB})",
    )


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="rebuild the read models from the event log (--verify: compare instead)",
        description=(
            "Rebuild the read models (task status, positions) from the event log, from position "
            "0. With --verify, rebuild into a scratch copy up to the live checkpoint and compare "
            "it with the live read models row by row: exit 0 if equal, 1 on any difference. "
            "Safe while the service runs."
        ),
        epilog="example: coinbt replay --db coinbt-data/coinbt.db --verify",
    )
    add_db_argument(replay)
    replay.add_argument("--verify", action="store_true", help="compare, change nothing")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.set_defaults(func=_replay)

    audit = subparsers.add_parser(
        "audit",
        help="check the hash chain, print a task's history, or rerun tasks",
        description=(
            "Audit the event log: 'verify' checks the hash chain, 'show' prints history, "
            "'rerun' re-executes completed tasks and compares their result digests."
        ),
        epilog="example: coinbt audit verify --db coinbt-data/coinbt.db",
    )
    audit_commands = audit.add_subparsers(metavar="ACTION", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="walk the hash chain; exit 1 and name the first bad position",
        description=(
            "Walk the whole log and check that positions run 1, 2, 3... and that every event's "
            "hash equals sha256(previous hash || its canonical bytes). Exit 0 if the chain holds; "
            "exit 1 naming the first position that does not match. With --artifacts, also read "
            "every artifact a Completed event records (equity, fills, trades), wherever it is "
            "stored, and check it against the sha256 and size the event holds: exit 1 naming "
            "each one that differs or cannot be read."
        ),
        epilog="example: coinbt audit verify --db coinbt-data/coinbt.db --artifacts",
    )
    add_db_argument(verify)
    verify.add_argument(
        "--artifacts",
        action="store_true",
        help="also check every recorded artifact against its sha256",
    )
    verify.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="the data directory with the local artifacts/ (default: the database's directory)",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(func=_audit_verify)
    show = audit_commands.add_parser(
        "show",
        help="print one task's events (its audit trail)",
        description="Print every event of one task: position, version, time, type, data, hash.",
        epilog="example: coinbt audit show 3f2a... --db coinbt-data/coinbt.db",
    )
    show.add_argument("task_id", metavar="ID", help="the task id")
    add_db_argument(show)
    show.add_argument("--json", action="store_true", help="print a JSON list of events")
    show.set_defaults(func=_audit_show)
    rerun = audit_commands.add_parser(
        "rerun",
        help="run completed tasks again and compare their result digests",
        description=(
            "Re-execute completed tasks from what the log recorded (the spec of their Queued "
            "event and its data, a dataset at its recorded version or the synthetic series), "
            "on worker processes as the service runs them, and compare each result digest with "
            "the one their Completed event recorded. Exit 0 if all match; exit 1 naming each "
            "mismatch and its first difference. See docs/service.md for what this proves."
        ),
        epilog=(
            "examples: coinbt audit rerun 3f2a... --db coinbt-data/coinbt.db\n"
            "          coinbt audit rerun --all --db coinbt-data/coinbt.db\n"
            "          coinbt audit rerun --sample 20 --seed 1 --db coinbt-data/coinbt.db"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rerun.add_argument("task_id", metavar="ID", nargs="?", help="the task id")
    which = rerun.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every completed task")
    which.add_argument("--sample", type=int, metavar="N", help="N completed tasks chosen at random")
    rerun.add_argument("--seed", type=int, default=None, help="the --sample draw's seed")
    add_db_argument(rerun)
    rerun.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the datasets are (default: the database's directory)",
    )
    rerun.add_argument("--json", action="store_true", help="print one JSON object")
    rerun.set_defaults(func=_audit_rerun)

    migrate = subparsers.add_parser(
        "migrate",
        help="apply the database's pending schema migrations (or: migrate artifacts)",
        description=(
            "Apply every pending numbered schema migration, each in its own transaction. "
            "Idempotent; refuses a database written by a newer coinbt. 'coinbt migrate "
            "artifacts --to URL' moves the stored artifacts to another store."
        ),
        epilog="example: coinbt migrate --db coinbt-data/coinbt.db",
    )
    add_db_argument(migrate)
    migrate.set_defaults(func=_migrate)
    from coinbt.cli.storage import add_migrate_artifacts

    add_migrate_artifacts(migrate)


def _require(db: Path | str) -> None:
    from coinbt.errors import DatabaseError

    if is_dsn(db):
        return  # connecting says whether it is there
    if not Path(db).is_file():
        raise DatabaseError(f"no database at {db} (give --db PATH or set COINBT_DB)")


def _replay(args: argparse.Namespace) -> int:
    from coinbt.cli._progress import ProgressLine

    _require(args.db)
    started = time.perf_counter()
    with ProgressLine("replaying the log") as line:
        if is_dsn(args.db):
            import anyio

            from coinbt.backends.postgres import migrate_postgres
            from coinbt.backends.postgres.rebuild import (
                rebuild_read_models_pg,
                verify_read_models_pg,
            )

            anyio.run(migrate_postgres, args.db)
            replay_pg = verify_read_models_pg if args.verify else rebuild_read_models_pg
            report = anyio.run(lambda: replay_pg(args.db, progress=line.count))
        else:
            from coinbt.backends.sqlite.migrations import apply_migrations
            from coinbt.backends.sqlite.rebuild import rebuild_read_models, verify_read_models

            apply_migrations(args.db)
            replay = verify_read_models if args.verify else rebuild_read_models
            report = replay(args.db, progress=line.count)
    seconds = time.perf_counter() - started
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "events": report.events,
                    "checkpoint": report.checkpoint,
                    "tasks": report.tasks,
                    "positions": report.positions,
                    "differences": [d.__dict__ for d in report.differences],
                    "seconds": round(seconds, 3),
                },
                default=str,
            )
        )
    elif args.verify:
        print(
            f"replayed {report.events:,} events (up to position {report.checkpoint:,}) in "
            f"{seconds:.1f} s: {report.tasks:,} tasks, {report.positions:,} positions"
        )
        for d in report.differences:
            print(f"DIFFERENT {d.table} {d.key}:\n  live:    {d.live}\n  rebuilt: {d.rebuilt}")
        print("read models match the log" if report.ok else "read models DIFFER from the log")
    else:
        print(
            f"rebuilt the read models from {report.events:,} events in {seconds:.1f} s: "
            f"{report.tasks:,} tasks, {report.positions:,} positions"
        )
    return 0 if report.ok else 1


def _audit_verify(args: argparse.Namespace) -> int:
    import msgspec

    from coinbt.backends.sqlite import verify_file
    from coinbt.cli._progress import ProgressLine

    _require(args.db)
    with ProgressLine("verifying the hash chain") as line:
        if is_dsn(args.db):
            report = _verify_postgres(args.db, line.count)
        else:
            report = verify_file(args.db, line.count)
    audit = _audit_artifacts(args) if args.artifacts and report.ok else None
    if args.json:
        out = msgspec.to_builtins(report)
        if audit is not None:
            out["artifacts"] = {
                "ok": audit.ok,
                "checked": audit.checked,
                "problems": [dataclasses.asdict(p) for p in audit.problems],
            }
        print(json.dumps(out))
    elif report.ok:
        print(f"ok: {report.checked:,} events verify; last hash {report.last_hash}")
    else:
        print(
            f"TAMPERED: first bad position {report.first_bad_position}: {report.reason} "
            f"({report.checked:,} events verified before it)"
        )
    if audit is not None and not args.json:
        for p in audit.problems:
            print(f"BAD ARTIFACT {p.key} (task {p.task_id}, {p.name}): {p.reason}")
        if audit.ok:
            print(f"ok: {audit.checked:,} artifacts match the sha256 their events record")
    return 0 if report.ok and (audit is None or audit.ok) else 1


def _audit_artifacts(args: argparse.Namespace) -> Any:
    import anyio

    from coinbt.artifacts.audit import audit_artifacts
    from coinbt.artifacts.locations import open_locations
    from coinbt.backend import open_backend
    from coinbt.cli._progress import ProgressLine

    data_dir: Path = args.data_dir or (
        Path("coinbt-data") if is_dsn(args.db) else Path(args.db).parent
    )

    async def run(line: ProgressLine) -> Any:
        async with (
            open_backend(args.db, data_dir) as backend,
            open_locations(data_dir, None) as locations,
        ):
            return await audit_artifacts(backend.store, backend.outbox, locations, line.count)

    with ProgressLine("checking the artifacts") as line:
        return anyio.run(run, line)


def _verify_postgres(dsn: str, progress: Progress) -> Any:
    import anyio

    from coinbt.backends.postgres import open_postgres_store

    async def verify() -> Any:
        async with open_postgres_store(dsn, migrate=False, readers=1) as store:
            return await store.verify(progress)

    return anyio.run(verify)


def _history(db: Path | str, task_id: str) -> list[Any]:
    """The task's stored events (an empty list for an unknown task)."""
    if is_dsn(db):
        import anyio

        from coinbt.backends.postgres import open_postgres_store

        async def read() -> list[Any]:
            async with open_postgres_store(str(db), migrate=False, readers=1) as store:
                return await store.read_stream(task_id)

        return anyio.run(read)
    from coinbt.backends.sqlite.migrations import connect_sync
    from coinbt.events import decode_rows

    conn = connect_sync(db, readonly=True)
    try:
        rows = conn.execute(
            "SELECT position, stream_id, version, type, schema, recorded_at,"
            " CAST(data AS BLOB), CAST(hash AS BLOB) FROM events WHERE stream_id = ?"
            " ORDER BY version",
            (task_id,),
        ).fetchall()
    finally:
        conn.close()
    return decode_rows(rows)


def _audit_show(args: argparse.Namespace) -> int:
    from coinbt.errors import TaskNotFoundError

    _require(args.db)
    stored = _history(args.db, args.task_id)
    if not stored:
        raise TaskNotFoundError(args.task_id)
    events = [e.to_builtins() for e in stored]
    if args.json:
        json.dump(events, sys.stdout, indent=2)
        print()
        return 0
    print(f"task {args.task_id}: {len(events)} events")
    for e in events:
        data = json.dumps(e["data"], separators=(",", ":"))
        if len(data) > 120:
            data = data[:117] + "..."
        print(
            f"{e['position']:>8} v{e['version']:<4} {e['recorded_at']}  {e['type']:<9} "
            f"{e['hash'][:12]}  {data}"
        )
    return 0


def _audit_rerun(args: argparse.Namespace) -> int:
    import anyio

    from coinbt.backend import open_backend
    from coinbt.errors import CoinbtError, SpecError
    from coinbt.executor.local import open_local_executor
    from coinbt.rerun import RerunResult, completed_task_ids, rerun_task, sample

    if (args.task_id is None) == (not args.all and args.sample is None):
        raise SpecError("give one task ID, or --all, or --sample N", field="ID")
    if args.sample is not None and args.sample < 1:
        raise SpecError(f"must be at least 1, got {args.sample}", field="--sample")
    _require(args.db)
    data_dir = args.data_dir
    if data_dir is None:
        if is_dsn(args.db):
            raise SpecError("a PostgreSQL database needs --data-dir", field="--data-dir")
        data_dir = Path(args.db).parent

    async def run() -> list[RerunResult] | CoinbtError:
        results: list[RerunResult] = []
        async with (
            open_backend(args.db, data_dir) as backend,
            open_local_executor(1) as executor,
        ):
            if args.task_id is not None:
                task_ids = [args.task_id]
            else:
                task_ids = await completed_task_ids(backend.store)
                if args.sample is not None:
                    task_ids = sample(task_ids, args.sample, args.seed)
            for task_id in task_ids:
                try:
                    result = await rerun_task(backend.store, backend.catalog, executor, task_id)
                except CoinbtError as e:  # raised below, not wrapped in the executor's group
                    return e
                results.append(result)
                if not args.json:
                    _print_rerun(result)
        return results

    outcome = anyio.run(run)
    if isinstance(outcome, CoinbtError):
        raise outcome
    results = outcome
    mismatches = [r for r in results if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "checked": len(results),
                    "mismatches": len(mismatches),
                    "results": [
                        {
                            "task_id": r.task_id,
                            "recorded": r.recorded,
                            "rerun": r.rerun,
                            "difference": r.difference,
                        }
                        for r in results
                    ],
                }
            )
        )
    elif mismatches:
        print(f"{len(mismatches)} of {len(results)} reruns differ from the recorded result")
    else:
        print(f"ok: {len(results)} tasks rerun; every result digest matches the recorded one")
    return 1 if mismatches else 0


def _print_rerun(result: Any) -> None:
    if result.ok:
        print(f"ok        {result.task_id}  {result.recorded[:16]}")
    else:
        print(f"MISMATCH  {result.task_id}: {result.difference}")


def _migrate(args: argparse.Namespace) -> int:
    if is_dsn(args.db):
        return _migrate_postgres(args.db)
    from coinbt.backends.sqlite.migrations import LATEST, apply_migrations, connect_sync
    from coinbt.backends.sqlite.outbox import backfill

    applied = apply_migrations(args.db)
    conn = connect_sync(args.db)
    try:  # runs that completed before the artifact table existed get their rows, once
        backfill(conn, time.time_ns() // 1000)
    finally:
        conn.close()
    if applied:
        print(f"{args.db}: applied migrations {', '.join(map(str, applied))}; now at {LATEST}")
    else:
        print(f"{args.db}: already at schema {LATEST}; nothing to do")
    return 0


def _migrate_postgres(dsn: str) -> int:
    import anyio

    from coinbt.backends.postgres import migrate_postgres
    from coinbt.backends.postgres.schema import LATEST

    applied = anyio.run(migrate_postgres, dsn)
    where = describe_db(dsn)
    if applied:
        print(f"{where}: applied migrations {', '.join(map(str, applied))}; now at {LATEST}")
    else:
        print(f"{where}: already at schema {LATEST}; nothing to do")
    return 0
