"""Moving stored artifacts from wherever they are to one store (local to S3, and back).

Each artifact is copied (its sha256 checked on the way), its row's ``location`` updated, and only
then removed from its old store; the log is never touched, since events name logical keys only.
Progress is recorded per artifact, so an interrupted run (or one stopped by ``limit``) continues
where it stopped when run again. Pending artifacts are left alone: the service uploads them to its
own store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from coinbt.artifacts.locations import open_locations
from coinbt.artifacts.outbox import ArtifactRow, open_outbox
from coinbt.artifacts.urls import S3Options, open_artifact_store
from coinbt.clock import Clock
from coinbt.errors import ArtifactIntegrityError, ArtifactNotFoundError
from coinbt.store.migrations import apply_migrations

__all__ = ("MoveReport", "move_artifacts")

log = logging.getLogger("coinbt.artifacts")


@dataclass
class MoveReport:
    target: str
    moved: int = 0
    already: int = 0  # stored at the target before this run
    pending: int = 0  # not stored anywhere yet: the service's uploader handles them
    missing: list[str] = field(default_factory=list)  # in the outbox, but in no store
    damaged: list[str] = field(default_factory=list)  # their bytes fail the recorded sha256
    complete: bool = True  # False when stopped by ``limit`` with artifacts left to move

    @property
    def ok(self) -> bool:
        return not self.missing and not self.damaged


async def move_artifacts(
    db: Path,
    target_url: str | Path,
    *,
    data_dir: Path | None = None,
    s3: S3Options | None = None,
    limit: int | None = None,
    keep_source: bool = False,
    clock: Clock | None = None,
    on_moved: Callable[[ArtifactRow], None] | None = None,
) -> MoveReport:
    """Move every stored artifact recorded in ``db`` to the store at ``target_url``."""
    data_dir = data_dir if data_dir is not None else db.parent
    await anyio.to_thread.run_sync(apply_migrations, db)
    async with (
        open_locations(data_dir, s3) as locations,
        open_artifact_store(target_url, s3=s3) as target,
        open_outbox(db, data_dir, clock) as outbox,
    ):
        location = locations.add(target)
        report = MoveReport(
            target=location,
            pending=outbox.counts["pending"],
            already=await outbox.count_stored_at(location),
        )
        after = ""
        while True:
            rows = await outbox.stored_elsewhere(location, after, 100)
            if not rows:
                break
            for row in rows:
                after = row.key
                if limit is not None and report.moved >= limit:
                    report.complete = False
                    break
                assert row.location is not None
                source = await locations.get(row.location)
                try:
                    data = await source.get_bytes(row.key, row.sha256)
                except ArtifactNotFoundError:
                    if not await target.exists(row.key):
                        report.missing.append(row.key)
                        log.error("artifact %s is in no store (%s)", row.key, row.location)
                        continue
                except ArtifactIntegrityError as e:
                    report.damaged.append(row.key)
                    log.error("not moving %s: %s", row.key, e)
                    continue
                else:
                    await target.put_bytes(row.key, data)
                if await outbox.relocate(row.key, row.location, location) and not keep_source:
                    await source.delete(row.key)
                report.moved += 1
                if on_moved is not None:
                    on_moved(row)
            if not report.complete:
                break
        return report
