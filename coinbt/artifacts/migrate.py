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

from coinbt.artifacts.base import ArtifactStore
from coinbt.artifacts.locations import ArtifactLocations, open_locations
from coinbt.artifacts.outbox import ArtifactRow, Outbox
from coinbt.artifacts.urls import S3Options, open_artifact_store
from coinbt.backends.sqlite.migrations import apply_migrations
from coinbt.backends.sqlite.outbox import open_outbox
from coinbt.clock import Clock
from coinbt.errors import ArtifactIntegrityError, ArtifactNotFoundError, CoinbtError

__all__ = ("MoveReport", "move_artifacts")

_PAGE = 100  # rows read, and moved concurrently, at a time

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
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> MoveReport:
    """Move every stored artifact recorded in ``db`` to the store at ``target_url``.

    Up to ``concurrency`` artifacts are in flight at once (an object store's latency, not its
    bandwidth, is what a one-at-a-time move waits on). ``progress`` hears (artifacts handled,
    artifacts to handle) after each one. A store-wide error (the target is unreachable) stops
    the move after the artifacts in flight and is raised; what moved stays moved.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
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
        total = max(0, outbox.counts["stored"] - report.already)
        if limit is not None:
            total = min(total, limit)
        in_flight = 0
        failure: list[CoinbtError] = []
        limiter = anyio.CapacityLimiter(concurrency)

        def handled() -> None:
            if progress is not None:
                done = report.moved + len(report.missing) + len(report.damaged)
                progress(done, max(total, done))

        async def move(row: ArtifactRow) -> None:
            nonlocal in_flight
            async with limiter:
                if failure:
                    return
                if limit is not None and report.moved + in_flight >= limit:
                    report.complete = False
                    return
                in_flight += 1
                try:
                    moved = await _move_one(
                        row, locations, target, location, outbox, report, keep_source
                    )
                except CoinbtError as e:  # a store or the database is failing
                    failure.append(e)
                    return
                finally:
                    in_flight -= 1
                if moved:
                    report.moved += 1
                handled()

        after = ""
        while report.complete and not failure:
            rows = await outbox.stored_elsewhere(location, after, _PAGE)
            if not rows:
                break
            after = rows[-1].key
            async with anyio.create_task_group() as tg:
                for row in rows:
                    tg.start_soon(move, row)
        if failure:
            raise failure[0]
        if progress is not None and total == 0:
            progress(0, 0)
        return report


async def _move_one(
    row: ArtifactRow,
    locations: ArtifactLocations,
    target: ArtifactStore,
    location: str,
    outbox: Outbox,
    report: MoveReport,
    keep_source: bool,
) -> bool:
    """Copy one artifact to ``target``, record its new location, delete the old copy; False
    (and noted in ``report``) when it is in no store or its bytes are damaged."""
    assert row.location is not None
    source = await locations.get(row.location)
    try:
        data = await source.get_bytes(row.key, row.sha256)
    except ArtifactNotFoundError:
        if not await target.exists(row.key):
            report.missing.append(row.key)
            log.error("artifact %s is in no store (%s)", row.key, row.location)
            return False
    except ArtifactIntegrityError as e:
        report.damaged.append(row.key)
        log.error("not moving %s: %s", row.key, e)
        return False
    else:
        await target.put_bytes(row.key, data)
    if await outbox.relocate(row.key, row.location, location) and not keep_source:
        await source.delete(row.key)
    return True
