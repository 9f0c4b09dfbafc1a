"""The TaskManager's helpers on a log shared by several processes (``coinbt.actors.task_manager``):
following the log into the mailbox, and recovering the tasks of processes that are gone."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from coinbt.errors import CoinbtError, DatabaseError, ShuttingDownError
from coinbt.events import StoredEvent
from coinbt.lifecycle import Status, TaskState
from coinbt.store.base import EventStore
from coinbt.store.instances import Liveness, owner_of

__all__ = ("follow_log", "watch_owners")

log = logging.getLogger("coinbt.task_manager")

_PAGE = 2000


async def follow_log(
    store: EventStore, after: int, deliver: Callable[[list[StoredEvent]], Awaitable[None]]
) -> None:
    """Hand every event after ``after`` to ``deliver``, a page at a time, as they commit (in any
    process); return when ``deliver`` raises ``ShuttingDownError``."""
    backoff = 0.1
    while True:
        hint = store.appended_hint()  # before reading: a commit meanwhile wakes us again
        try:
            events = await store.read_all(after, _PAGE)
        except DatabaseError as e:
            log.warning("following the log failed (%s); retrying", e)
            await anyio.sleep(backoff)  # a back-off while the database is away
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.1
        if not events:
            await hint.wait()
            continue
        try:
            await deliver(events)
        except ShuttingDownError:
            return
        after = events[-1].position


async def watch_owners(
    liveness: Liveness,
    every_s: float,
    running_elsewhere: Callable[[], dict[str, str]],
    load: Callable[[str], Awaitable[TaskState]],
    recover: Callable[[TaskState, str], Awaitable[object]],
) -> None:
    """At once and every ``every_s`` (liveness can only be polled): for each other instance that
    runs tasks (``running_elsewhere()``: task id -> worker id) and is gone, ``recover`` each of
    its tasks, read afresh from the log under the gone instance's lock. Returns when ``recover``
    raises ``ShuttingDownError``."""
    while True:
        owners = {owner_of(worker) for worker in running_elsewhere().values()}
        for owner in sorted(o for o in owners if o is not None):
            try:
                async with liveness.take_if_dead(owner) as dead:
                    if dead:
                        await _recover_owner(owner, running_elsewhere(), load, recover)
            except ShuttingDownError:
                return
            except DatabaseError as e:
                log.warning("checking on instance %s failed (%s); trying again later", owner, e)
        await anyio.sleep(every_s)


async def _recover_owner(
    owner: str,
    running: dict[str, str],
    load: Callable[[str], Awaitable[TaskState]],
    recover: Callable[[TaskState, str], Awaitable[object]],
) -> None:
    task_ids = [task_id for task_id, worker in running.items() if owner_of(worker) == owner]
    log.warning("instance %s is gone; recovering its %d tasks", owner, len(task_ids))
    for task_id in task_ids:
        state = await load(task_id)
        if state.status is not Status.RUNNING or owner_of(state.worker_id) != owner:
            continue  # it moved on meanwhile
        try:
            await recover(state, owner)
        except ShuttingDownError:
            raise
        except CoinbtError as e:  # another process was faster: the log has its outcome
            log.info("recovering %s: %s", task_id, e)
