"""The Projector: follows the log and keeps the read models (status, positions) up to date.

It reads from its checkpoint in pages, folds each page on a worker thread and commits the views and
the new checkpoint together. Anyone can ``await projector.wait_for(position)`` to read their own
writes: the read models include every event up to ``position`` once it returns.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup

from coinbt.actors.base import Actor
from coinbt.projections.sqlite import ReadModelWriter
from coinbt.store import SQLiteEventStore
from coinbt.store.migrations import connect_sync

__all__ = ("Projector",)


class Projector(Actor[None]):
    name = "projector"

    def __init__(self, store: SQLiteEventStore, *, page: int = 2000) -> None:
        super().__init__(capacity=1)
        self._store = store
        self._page = page
        self._writer: ReadModelWriter | None = None
        self._limiter = anyio.CapacityLimiter(1)
        self.position = 0
        self._advanced = anyio.Event()

    async def on_start(self, tg: TaskGroup) -> None:
        conn = await anyio.to_thread.run_sync(
            lambda: connect_sync(self._store.path, check_same_thread=False)
        )
        self._writer = ReadModelWriter(conn)
        self.position = self._writer.checkpoint
        await self.catch_up()
        tg.start_soon(self._follow)

    async def on_stop(self) -> None:
        if self._writer is not None:
            self._writer._conn.close()

    async def handle(self, message: None) -> None:  # no commands: the log is its input
        del message

    async def catch_up(self) -> None:
        """Apply everything in the log now (used at start, before serving reads)."""
        while await self._apply_page():
            pass

    async def _follow(self) -> None:
        while True:
            hint = self._store.appended_hint()
            if not await self._apply_page():
                await hint.wait()

    async def _apply_page(self) -> bool:
        page = await self._store.read_all(self.position, self._page)
        if not page:
            return False
        writer = self._writer
        assert writer is not None
        position = await anyio.to_thread.run_sync(writer.apply, page, limiter=self._limiter)
        self.position = position
        self._advanced.set()
        self._advanced = anyio.Event()
        return True

    def advanced_hint(self) -> anyio.Event:
        """Set the next time the read models advance."""
        return self._advanced

    async def wait_for(self, position: int) -> None:
        """Return once the read models include every event up to ``position``."""
        while self.position < position:
            await self._advanced.wait()
