"""Per-task chains of background appends, for the TaskManager.

The TaskManager decides at once and appends in the background, so that its mailbox never waits on
the disk. Appends of one task must still reach the log in decision order: each waits for the one
before it (its chain). A refused append (the log moved: another decider was first) is handed to
``on_refused`` to reload the task before its ``done`` callback runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from coinbt.errors import CoinbtError
from coinbt.events import StoredEvent, TaskEvent
from coinbt.store.base import EventStore

__all__ = ("AppendChains", "Done")

Done = Callable[[list[StoredEvent] | None, CoinbtError | None], None]
"""Called once an append committed (its stored events) or was refused (the error)."""


@dataclass(slots=True)
class _Link:
    done: anyio.Event = field(default_factory=anyio.Event)


class AppendChains:
    def __init__(
        self,
        store: EventStore,
        on_refused: Callable[[str, CoinbtError], Awaitable[None]],
        on_settled: Callable[[], None],
    ) -> None:
        self._store = store
        self._on_refused = on_refused
        self._on_settled = on_settled
        self._tails: dict[str, _Link] = {}
        self._tg: TaskGroup | None = None

    def bind(self, tg: TaskGroup) -> None:
        """The task group the appends run in (the actor's, re-bound on every start)."""
        self._tg = tg
        self._tails.clear()

    def pending(self, task_id: str) -> bool:
        """Whether an append of ``task_id`` is still on its way to the log."""
        return task_id in self._tails

    @property
    def busy(self) -> bool:
        """Whether any append is still on its way to the log."""
        return bool(self._tails)

    def append(
        self,
        task_id: str,
        events: Sequence[TaskEvent],
        expected_version: int,
        done: Done,
        *,
        reload: bool = True,
    ) -> None:
        """Append ``events`` at ``expected_version`` after the task's earlier appends. With
        ``reload=False`` a refusal only reaches ``done`` (the caller knows what it means)."""
        previous = self._tails.get(task_id)
        link = _Link()
        self._tails[task_id] = link
        assert self._tg is not None
        self._tg.start_soon(
            self._run, task_id, events, expected_version, previous, link, done, reload
        )

    async def _run(
        self,
        task_id: str,
        events: Sequence[TaskEvent],
        expected_version: int,
        previous: _Link | None,
        link: _Link,
        done: Done,
        reload: bool,
    ) -> None:
        try:
            if previous is not None:
                await previous.done.wait()
            try:
                stored = await self._store.append(task_id, events, expected_version)
            except CoinbtError as e:
                if reload:
                    await self._on_refused(task_id, e)
                done(None, e)
            else:
                done(stored, None)
        finally:
            link.done.set()
            if self._tails.get(task_id) is link:
                del self._tails[task_id]
            self._on_settled()

    def append_new(
        self,
        appends: Sequence[tuple[str, Sequence[TaskEvent]]],
        done: Callable[[list[list[StoredEvent]] | None, CoinbtError | None], None],
    ) -> None:
        """Append the first events of several new tasks in one atomic append (all of them or
        none); later appends of those tasks wait for it. A refusal reloads every task."""
        links = {task_id: _Link() for task_id, _ in appends}
        for task_id, link in links.items():
            assert task_id not in self._tails, "append_new is for new tasks only"
            self._tails[task_id] = link
        assert self._tg is not None
        self._tg.start_soon(self._run_new, appends, links, done)

    async def _run_new(
        self,
        appends: Sequence[tuple[str, Sequence[TaskEvent]]],
        links: dict[str, _Link],
        done: Callable[[list[list[StoredEvent]] | None, CoinbtError | None], None],
    ) -> None:
        try:
            try:
                stored = await self._store.append_many(
                    [(task_id, events, 0) for task_id, events in appends]
                )
            except CoinbtError as e:
                for task_id in links:
                    await self._on_refused(task_id, e)
                done(None, e)
            else:
                done(stored, None)
        finally:
            for task_id, link in links.items():
                link.done.set()
                if self._tails.get(task_id) is link:
                    del self._tails[task_id]
            self._on_settled()

    def after(self, task_id: str, then: Callable[[], None]) -> None:
        """Run ``then`` once the task's pending appends (if any) have committed."""
        link = self._tails.get(task_id)
        if link is None:
            then()
            return

        async def wait() -> None:
            await link.done.wait()
            then()

        assert self._tg is not None
        self._tg.start_soon(wait)
