"""The Projector: follows the log and keeps the read models (status, positions) up to date.

While this process is the writer of the read models (always, on SQLite; one process per
database at a time, on PostgreSQL: ``coinbt.backends.postgres.read_models``), it reads from its
checkpoint in pages, folds each page and commits the views and the new checkpoint together.
Otherwise it follows the writer's announcements, and every ``retry_s`` it checks whether it
should take over (the writer's process died). Either way, anyone can
``await projector.wait_for(position)`` to read their own writes: the read models include every
event up to ``position`` once it returns.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskGroup

from coinbt.actors.base import Actor
from coinbt.errors import DatabaseError, ProjectionConflictError
from coinbt.projections.base import Projection, ReadModelSink
from coinbt.store.base import EventStore

__all__ = ("Projector",)

log = logging.getLogger("coinbt.projector")


class Projector(Actor[None]):
    name = "projector"

    def __init__(self, store: EventStore, projection: Projection, *, page: int = 2000) -> None:
        super().__init__(capacity=1)
        self._store = store
        self._projection = projection
        self._page = page
        self._sink: ReadModelSink | None = None
        self.position = 0
        self._advanced = anyio.Event()

    @property
    def leading(self) -> bool:
        """Whether this process writes the read models now."""
        return self._sink is not None

    async def on_start(self, tg: TaskGroup) -> None:
        self._sink = await self._projection.lead()
        if self._sink is not None:
            self._advance(self._sink.checkpoint)
            await self.catch_up()
        else:
            self._advance(await self._projection.committed())
        tg.start_soon(self._run)
        if self._sink is None:  # the writer is elsewhere: wait until it has caught up
            await self.wait_for(await self._store.last_position())

    async def handle(self, message: None) -> None:  # no commands: the log is its input
        del message

    async def catch_up(self) -> None:
        """Apply everything in the log now (used at start, before serving reads)."""
        sink = self._sink
        assert sink is not None
        while await self._apply_page(sink):
            pass

    async def _run(self) -> None:
        elect_now = False
        while True:
            sink = self._sink
            try:
                if sink is not None:
                    await self._lead(sink)
                else:
                    if not elect_now:
                        with anyio.move_on_after(self._projection.retry_s):
                            await self._watch()
                    elect_now = False
                    self._sink = await self._projection.lead()
                    if self._sink is not None:
                        self._advance(self._sink.checkpoint)
            except ProjectionConflictError as e:  # say, a `coinbt replay` rebuilt the tables
                log.info("%s; starting again from the checkpoint", e)
                self._sink = None
                await self._projection.resign()
                elect_now = True
            except DatabaseError as e:
                log.warning(
                    "projecting failed (%s); retrying in %.1f s", e, self._projection.retry_s
                )
                self._sink = None
                await self._projection.resign()
                await anyio.sleep(self._projection.retry_s)  # a back-off, not a wait for a change

    async def _lead(self, sink: ReadModelSink) -> None:
        while True:
            hint = self._store.appended_hint()
            if not await self._apply_page(sink):
                await hint.wait()

    async def _watch(self) -> None:
        """Follow the writer's announcements (and read the committed checkpoint once, in case
        an announcement was missed); return early if the writer announces that it stopped."""
        self._advance(await self._projection.committed())
        while True:
            hint = self._projection.announced_hint()
            self._advance(self._projection.announced)
            if self._projection.vacant:
                return
            await hint.wait()

    async def _apply_page(self, sink: ReadModelSink) -> bool:
        page = await self._store.read_all(sink.checkpoint, self._page)
        if not page:
            return False
        self._advance(await sink.apply(page))
        return True

    def _advance(self, position: int) -> None:
        if position > self.position:
            self.position = position
            self._advanced.set()
            self._advanced = anyio.Event()

    def advanced_hint(self) -> anyio.Event:
        """Set the next time the read models advance."""
        return self._advanced

    async def wait_for(self, position: int) -> None:
        """Return once the read models include every event up to ``position``."""
        while self.position < position:
            await self._advanced.wait()
