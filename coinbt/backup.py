"""Backups of the SQLite database (the event log and everything beside it) to a store.

``backup_database`` takes a consistent snapshot while the service runs, with SQLite's online
backup API (one read transaction: in WAL mode writers go on meanwhile), reads the snapshot's last
position and last hash from the snapshot itself, and uploads two objects: ``<name>.db`` and the
manifest ``<name>.json`` (written last, so a backup without one is incomplete and is ignored).
``restore_database`` downloads a backup, checks its sha256, walks its hash chain and compares the
chain's end with the manifest, and refuses any mismatch; it never replaces an existing database
without ``force``, and then keeps the old file (renamed, with its WAL) beside it.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import msgspec

from coinbt.artifacts import ArtifactStore, S3Options, open_artifact_store, parse_store_url
from coinbt.artifacts.local import sha256_file
from coinbt.artifacts.urls import S3Location
from coinbt.backends.sqlite.migrations import LATEST, connect_sync, schema_version
from coinbt.backends.sqlite.store import verify_file
from coinbt.clock import Clock, SystemClock
from coinbt.errors import ArtifactIntegrityError, ArtifactNotFoundError, BackupError, CoinbtError
from coinbt.store.base import Progress

__all__ = (
    "BackupInfo",
    "DamagedBackup",
    "PeriodicBackups",
    "RestoreReport",
    "backup_database",
    "list_backups",
    "open_backup_source",
    "restore_database",
    "scan_backups",
)

log = logging.getLogger("coinbt.backup")

_NAME = re.compile(r"coinbt-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-p[0-9]+")  # used with fullmatch


class BackupInfo(msgspec.Struct, frozen=True):
    """A backup's manifest (``<name>.json`` beside ``<name>.db``)."""

    name: str
    created_at: str  # ISO 8601, UTC
    db_key: str
    sha256: str
    size: int
    last_position: int
    last_hash: str  # hex; "" for an empty log
    schema_version: int
    source: str  # the database file it was taken from
    format: int = 1


@dataclass(frozen=True, slots=True)
class DamagedBackup:
    """A backup whose manifest cannot be read: it is never restored from."""

    name: str
    error: str


@dataclass(frozen=True, slots=True)
class RestoreReport:
    name: str
    db: Path
    last_position: int
    last_hash: str
    events: int
    kept: Path | None  # where the replaced database went (with --force)
    skipped: tuple[DamagedBackup, ...] = ()  # damaged backups passed over for the newest intact


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"


def _snapshot(db: Path, target: Path) -> tuple[int, str, int]:
    """Copy ``db`` into ``target`` with the online backup API; (last position, hash, schema)."""
    if not db.is_file():
        raise BackupError(f"no database at {db}")
    source = connect_sync(db, readonly=True)
    try:
        dest = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(dest)  # in one step: one read transaction, so one consistent snapshot
            dest.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            schema = schema_version(dest)
            if schema == 0:
                raise BackupError(f"{db} is not a coinbt database (no schema)")
            row = dest.execute(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone()
        finally:
            dest.close()
    except sqlite3.Error as e:
        raise BackupError(f"cannot take a snapshot of {db}: {e}") from e
    finally:
        source.close()
    position, digest = (row[0], bytes(row[1]).hex()) if row else (0, "")
    return position, digest, schema


async def backup_database(
    db: Path, store: ArtifactStore, *, clock: Clock | None = None
) -> BackupInfo:
    """Snapshot ``db`` (safe while the service writes to it) and upload it to ``store``."""
    clock = clock or SystemClock()
    moment = clock.now()
    db = Path(db)
    fd, temp_name = tempfile.mkstemp(prefix=f".{db.name}.backup-", dir=db.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        position, last_hash, schema = await anyio.to_thread.run_sync(_snapshot, db, temp)
        sha, size = await anyio.to_thread.run_sync(sha256_file, temp)
        name = f"coinbt-{_stamp(moment)}-p{position}"
        info = BackupInfo(
            name=name,
            created_at=moment.isoformat().replace("+00:00", "Z"),
            db_key=f"{name}.db",
            sha256=sha,
            size=size,
            last_position=position,
            last_hash=last_hash,
            schema_version=schema,
            source=os.fspath(db.resolve()),
        )
        await store.put_file(info.db_key, temp, sha)
        await store.put_bytes(f"{name}.json", msgspec.json.encode(info))
    finally:
        await anyio.Path(temp).unlink(missing_ok=True)
    log.info("backed up %s to %s/%s (position %d)", db, store.url, info.db_key, position)
    return info


async def list_backups(store: ArtifactStore) -> list[BackupInfo]:
    """The complete backups in ``store`` whose manifests read, oldest first (a damaged one is
    logged and left out: see ``scan_backups``)."""
    infos, damaged = await scan_backups(store)
    for backup in damaged:
        log.warning("%s", backup.error)
    return infos


async def scan_backups(store: ArtifactStore) -> tuple[list[BackupInfo], list[DamagedBackup]]:
    """The complete backups in ``store``, oldest first, and the backups whose manifest cannot be
    read (damaged, or not a manifest), by name. One damaged backup never hides the others."""
    infos: list[BackupInfo] = []
    damaged: list[DamagedBackup] = []
    for key in await store.list_keys("coinbt-"):
        if key.endswith(".json") and "/" not in key and _NAME.fullmatch(key[: -len(".json")]):
            name = key[: -len(".json")]
            try:
                infos.append(await _manifest(store, name))
            except BackupError as e:
                damaged.append(DamagedBackup(name, str(e)))
    infos.sort(key=lambda i: (i.created_at, i.name))
    return infos, sorted(damaged, key=lambda d: d.name)


async def _manifest(store: ArtifactStore, name: str) -> BackupInfo:
    try:
        data = await store.get_bytes(f"{name}.json")
    except ArtifactNotFoundError:
        raise BackupError(f"no backup named {name!r} in {store.url}") from None
    try:
        info = msgspec.json.decode(data, type=BackupInfo)
    except msgspec.DecodeError as e:
        raise BackupError(f"the manifest of backup {name!r} in {store.url} is damaged: {e}") from e
    if info.name != name:
        raise BackupError(
            f"the manifest of backup {name!r} in {store.url} is damaged: it names {info.name!r}"
        )
    return info


@asynccontextmanager
async def open_backup_source(
    url: str, s3: S3Options | None = None
) -> AsyncIterator[tuple[ArtifactStore, str | None]]:
    """The store of ``url`` and the backup it names: ``.../coinbt-...-p42`` (with or without
    ``.db``) names one backup; any other URL is a store whose newest backup is meant (None)."""
    where = parse_store_url(url)
    if isinstance(where, S3Location):
        parent, _, last = where.prefix.rpartition("/")
        container: str | Path = S3Location(where.bucket, parent).url
    else:
        last, container = where.name, where.parent
    for suffix in (".db", ".json"):
        last = last.removesuffix(suffix)
    if _NAME.fullmatch(last):
        async with open_artifact_store(container, s3=s3) as store:
            yield store, last
    else:
        async with open_artifact_store(url, s3=s3) as store:
            yield store, None


async def restore_database(
    store: ArtifactStore,
    db: Path,
    *,
    name: str | None = None,
    force: bool = False,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore backup ``name`` (default: the newest) from ``store`` into ``db``, after checking
    it. ``BackupError`` if it does not check out, or if ``db`` exists and ``force`` is not set.
    ``progress`` hears how far the hash-chain check is (from a worker thread)."""
    clock = clock or SystemClock()
    db = Path(db)
    skipped: tuple[DamagedBackup, ...] = ()
    if name is None:
        backups, damaged = await scan_backups(store)
        if not backups:
            found = f" (and {len(damaged)} with damaged manifests)" if damaged else ""
            raise BackupError(f"no intact backups in {store.url}{found}")
        info = backups[-1]
        skipped = tuple(d for d in damaged if d.name > info.name)  # newer, but unreadable
    else:
        info = await _manifest(store, name)
    if db.exists() and not force:
        raise BackupError(
            f"{db} exists; refusing to overwrite it. Stop the service using it and pass --force "
            "to replace it (the old file is kept beside it), or restore to a new path"
        )
    try:
        data = await store.get_bytes(info.db_key, info.sha256)
    except ArtifactIntegrityError as e:
        raise BackupError(f"backup {info.name} is damaged ({e}); not restored") from e
    except ArtifactNotFoundError as e:
        raise BackupError(f"backup {info.name} has no database file in {store.url}") from e
    db.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{db.name}.restore-", dir=db.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        await anyio.Path(temp).write_bytes(data)
        del data
        events = await anyio.to_thread.run_sync(_check, temp, info, progress)
        kept = await anyio.to_thread.run_sync(_replace, temp, db, clock.now() if force else None)
    finally:
        await anyio.Path(temp).unlink(missing_ok=True)
    log.info("restored %s from %s into %s", info.name, store.url, db)
    return RestoreReport(info.name, db, info.last_position, info.last_hash, events, kept, skipped)


def _check(path: Path, info: BackupInfo, progress: Progress | None = None) -> int:
    """Walk the downloaded log's hash chain and compare its end with the manifest."""
    conn = connect_sync(path, readonly=True)
    try:
        schema = schema_version(conn)
    finally:
        conn.close()
    if schema > LATEST:
        raise BackupError(
            f"backup {info.name} has schema {schema}, newer than this coinbt's {LATEST}; upgrade"
        )
    report = verify_file(path, progress)
    if not report.ok:
        raise BackupError(
            f"backup {info.name} fails the hash-chain check at position "
            f"{report.first_bad_position}: {report.reason}; not restored"
        )
    recorded = (info.last_position, info.last_hash)
    found = (report.last_position, report.last_hash if report.last_position else "")
    if found != recorded:
        raise BackupError(
            f"backup {info.name} does not match its record: the log ends at position "
            f"{found[0]} with hash {found[1] or '-'}, the manifest says position {recorded[0]} "
            f"with hash {recorded[1] or '-'}; not restored"
        )
    return report.checked


def _replace(temp: Path, db: Path, moment: datetime | None) -> Path | None:
    """Move ``temp`` to ``db``; an existing ``db`` (and its -wal/-shm) is renamed, not lost."""
    kept: Path | None = None
    if db.exists():
        assert moment is not None
        kept = db.with_name(f"{db.name}.before-restore-{_stamp(moment)}")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{db}{suffix}")
            if old.exists():
                os.replace(old, f"{kept}{suffix}")  # the WAL goes with its file: nothing lost
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.replace(temp, db)
    return kept


class PeriodicBackups:
    """``serve --backup-every``: a backup every ``every_s`` seconds, in the service's task group.
    A failed backup is logged and counted; the next one is tried on schedule."""

    def __init__(
        self, db: Path, store: ArtifactStore, every_s: float, *, clock: Clock | None = None
    ) -> None:
        if every_s <= 0:
            raise BackupError("the backup interval must be positive")
        self.db = db
        self.store = store
        self.every_s = every_s
        self.clock = clock or SystemClock()
        self.completed = 0
        self.failures = 0
        self.last: BackupInfo | None = None
        self.last_error: str | None = None
        self._changed = anyio.Event()

    def changed_hint(self) -> anyio.Event:
        """Set after the next backup attempt."""
        return self._changed

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.every_s)
            try:
                self.last = await backup_database(self.db, self.store, clock=self.clock)
                self.completed += 1
            except CoinbtError as e:
                self.failures += 1
                self.last_error = str(e)
                log.warning("the periodic backup of %s failed: %s", self.db, e)
            self._changed.set()
            self._changed = anyio.Event()
