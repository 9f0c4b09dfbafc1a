"""The Uploader: moves the staged artifacts of completed runs into the artifact store.

It works through the outbox's pending rows, least-tried and oldest first, a few uploads at a time.
A failed upload never touches the task (its Completed event is already in the log): the row stays
``pending`` with its attempt count and last error, and is retried with backoff (doubling from
``backoff_s[0]`` up to ``backoff_s[1]``) for as long as it takes. A failure of the store itself
(endpoint down, timeouts, wrong credentials, missing bucket, or the database) pauses every upload
for the backoff; a failure of one artifact (say its staged file cannot be read) parks only that
one, so it cannot hold up the others. Rows left pending by an earlier process are retried as soon
as it starts. A row turns ``failed`` only when the upload can never succeed: its staged file is
gone (and the store does not have it) or no longer hashes to the recorded sha256.

On a database shared by several processes, each uploads the rows it staged; the rows of a
process that is gone are adopted by one whose data directory has their files (``adopt_every_s``).

Its mailbox takes :class:`Wake` (new pending rows). ``changed_hint()`` is set whenever a row
changes state or a backoff starts, so tests and ``System.drain`` wait on it instead of sleeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from coinbt import defaults
from coinbt.actors.base import Actor
from coinbt.artifacts import ArtifactStore, LocalArtifactStore
from coinbt.artifacts.outbox import ArtifactRow, Outbox
from coinbt.errors import (
    ArtifactBucketNotFoundError,
    ArtifactCredentialsError,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactStoreUnavailableError,
    CoinbtError,
    DatabaseError,
    MailboxFullError,
    ShuttingDownError,
)

__all__ = ("Uploader", "Wake")


def _remove(paths: list[Path]) -> None:
    """Delete staged files a store copied rather than moved (a local store moves them)."""
    for path in paths:
        path.unlink(missing_ok=True)


log = logging.getLogger("coinbt.uploader")

# Errors that say the store (or the database), not one artifact, is failing: pause everything.
_STORE_WIDE = (
    ArtifactStoreUnavailableError,
    ArtifactCredentialsError,
    ArtifactBucketNotFoundError,
    DatabaseError,
)


@dataclass(frozen=True, slots=True)
class Wake:
    """There are new pending artifacts."""


class Uploader(Actor[Wake]):
    name = "uploader"

    def __init__(
        self,
        outbox: Outbox,
        store: ArtifactStore,
        location: str,
        *,
        concurrency: int = 4,
        batch: int = 64,
        backoff_s: tuple[float, float] = defaults.UPLOAD_BACKOFF_S,
        adopt_every_s: float | None = None,
    ) -> None:
        super().__init__(capacity=1)  # a wake-up is idempotent: one queued is enough
        self._outbox = outbox
        self.store = store
        self.location = location
        self._concurrency = concurrency
        self._batch = batch
        self._backoff_s = backoff_s
        self._adopt_every_s = adopt_every_s
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._parked: dict[str, float] = {}  # pending key -> when to retry it (anyio time)
        self.delay = 0.0  # the current store-wide backoff; 0 while uploads succeed
        self.backing_off = False
        self.uploaded = 0  # counters since start, for /metrics
        self.failed_attempts = 0
        self.last_error: str | None = None

    # --- the outside's view ----------------------------------------------------------------------

    def notify(self) -> None:
        """Wake the uploader for new pending rows (never blocks, never fails)."""
        try:
            self.tell_nowait(Wake())
        except (MailboxFullError, ShuttingDownError):
            pass  # a wake-up is already queued, or the service is stopping (rows stay pending)

    @property
    def pending(self) -> int:
        return self._outbox.counts["pending"]

    @property
    def settled(self) -> bool:
        """Nothing to upload but what waits for a retry after a failure."""
        return self.backing_off or self.pending <= len(self._parked)

    def changed_hint(self) -> anyio.Event:
        """An event set at the next change of an artifact's state or of the backoff."""
        return self._changed

    async def wait_settled(self) -> None:
        """Return once :attr:`settled` (at once if it is)."""
        while True:
            hint = self._changed
            if self.settled:
                return
            await hint.wait()

    # --- the actor's side ------------------------------------------------------------------------

    async def on_start(self, tg: TaskGroup) -> None:
        self.backing_off = False
        self._parked.clear()
        tg.start_soon(self._loop)
        if self._adopt_every_s is not None:
            tg.start_soon(self._adopt_orphans, self._adopt_every_s)

    async def handle(self, message: Wake) -> None:
        self._wake.set()

    async def _adopt_orphans(self, every_s: float) -> None:
        """On a shared database: take over the pending uploads of processes that are gone (at
        start and every ``every_s``; liveness can only be polled)."""
        while True:
            try:
                if await self._outbox.adopt_orphans():
                    self.notify()
            except CoinbtError as e:
                log.warning("adopting the uploads of stopped processes failed: %s", e)
            await anyio.sleep(every_s)

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _loop(self) -> None:
        while True:
            self._wake = anyio.Event()  # before reading: a row added meanwhile wakes us again
            try:
                due = await self._due()
            except CoinbtError as e:  # the database itself failed: keep the service up, retry
                error: CoinbtError | None = e
            else:
                if not due:
                    await self._idle()
                    continue
                error = await self._round(due)
            if error is None:
                self.delay = 0.0
                continue
            low, high = self._backoff_s
            self.delay = min(high, max(low, self.delay * 2))
            self.last_error = str(error)
            log.warning(
                "artifact uploads to %s fail (%s); %d pending, retrying in %.1f s",
                self.location,
                error,
                self.pending,
                self.delay,
            )
            self.backing_off = True
            self._signal()
            await anyio.sleep(self.delay)
            self.backing_off = False

    async def _due(self) -> list[ArtifactRow]:
        """The pending rows to try now: parked ones sort last (more attempts), so reading past
        them is enough to see every other pending row."""
        limit = self._batch + len(self._parked)
        rows = await self._outbox.pending(limit)
        if len(rows) < limit:  # every pending row is here: forget the parked ones that are not
            keys = {row.key for row in rows}
            self._parked = {k: t for k, t in self._parked.items() if k in keys}
        now = anyio.current_time()
        return [row for row in rows if self._parked.get(row.key, now) <= now][: self._batch]

    async def _idle(self) -> None:
        """Wait for new rows, or for the first parked row's retry."""
        if not self._parked:
            await self._wake.wait()
            return
        with anyio.move_on_after(min(self._parked.values()) - anyio.current_time()):
            await self._wake.wait()

    def _park(self, row: ArtifactRow, error: CoinbtError) -> None:
        low, high = self._backoff_s
        delay = min(high, low * 2 ** min(row.attempts, 30))
        self._parked[row.key] = anyio.current_time() + delay
        log.warning("storing %s failed (%s); retrying it in %.1f s", row.key, error, delay)

    async def _round(self, rows: list[ArtifactRow]) -> CoinbtError | None:
        """Upload ``rows``, a few at a time; the first store-wide error, if any."""
        errors: list[CoinbtError] = []
        stored: list[tuple[str, Path]] = []
        limiter = anyio.CapacityLimiter(self._concurrency)
        if isinstance(self.store, LocalArtifactStore):
            rows = await self._move_local(self.store, rows, stored)

        async def one(row: ArtifactRow) -> None:
            async with limiter:
                if errors:  # the store is failing: leave the rest for after the backoff
                    return
                try:
                    error = await self._upload(row, stored)
                except CoinbtError as e:  # the outbox's database failed
                    error = e
                if isinstance(error, _STORE_WIDE):
                    errors.append(error)
                elif error is not None:
                    self._park(row, error)
                else:
                    self._parked.pop(row.key, None)

        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(one, row)
        if stored:
            # One outbox transaction and one thread hop for the whole round, not per artifact
            # (measured: per-artifact bookkeeping cost more than moving the files). A crash
            # before this leaves the rows pending: the next round finds the objects stored.
            await self._outbox.mark_stored_many([key for key, _ in stored], self.location)
            await anyio.to_thread.run_sync(_remove, [path for _, path in stored])
            self.uploaded += len(stored)
        self._signal()
        return errors[0] if errors else None

    async def _move_local(
        self, store: LocalArtifactStore, rows: list[ArtifactRow], stored: list[tuple[str, Path]]
    ) -> list[ArtifactRow]:
        """Move the staged files of ``rows`` into a local store in one thread hop (a tiny run's
        upload is a rename: a hop per file cost more than the renames); add the moved ones to
        ``stored``. The rows left (no staged file, or its move failed) go the usual way, one by
        one, which also sorts out why."""
        moves = [(row, self._outbox.staged_path(row)) for row in rows]
        items = [(row.key, path, row.sha256) for row, path in moves if path is not None]
        if not items:
            return rows
        errors = iter(await store.put_files(items))
        left = []
        for row, path in moves:
            if path is not None and next(errors) is None:
                stored.append((row.key, path))
                self._parked.pop(row.key, None)
            else:
                left.append(row)
        return left

    async def _upload(self, row: ArtifactRow, stored: list[tuple[str, Path]]) -> CoinbtError | None:
        """Store one artifact; on success add it to ``stored`` (recorded by the round)."""
        path = self._outbox.staged_path(row)
        try:
            if path is None:
                await self._recover(row)
                return None
            try:
                await self.store.put_file(row.key, path, row.sha256)
            except ArtifactIntegrityError:
                raise
            except ArtifactError:
                # Only now look at the staged file: the usual case costs no extra check.
                if await anyio.Path(path).is_file():
                    raise
                await self._recover(row)
                return None
        except ArtifactIntegrityError as e:
            await self._outbox.mark_failed(row.key, f"{e} (the staged file is kept at {path})")
            log.error("artifact %s can never be stored: %s", row.key, e)
            self._signal()
            return None
        except ArtifactError as e:
            self.failed_attempts += 1
            await self._outbox.mark_retry(row.key, str(e))
            self._signal()
            return e
        stored.append((row.key, path))
        return None

    async def _recover(self, row: ArtifactRow) -> None:
        """The staged file is gone: an earlier process may have stored it and stopped before it
        recorded that, or the run's outcome was refused and the row discarded meanwhile."""
        if await self.store.exists(row.key):
            await self._outbox.mark_stored(row.key, self.location)
        elif await self._outbox.get(row.key) is not None:
            reason = f"its staged file {row.staged} is missing and the store does not have it"
            await self._outbox.mark_failed(row.key, reason)
            log.error("artifact %s is lost: %s", row.key, reason)
        self._signal()
