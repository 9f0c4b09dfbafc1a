"""The actor layer: tell and ask, backpressure, supervision, crash loops, draining on shutdown."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import TaskGroup

from coinbt.actors.base import Actor, ActorCrashLoopError, MailboxFullError, Reply, Supervisor
from coinbt.clock import ManualClock
from coinbt.errors import ShuttingDownError


@dataclass
class Add:
    amount: int
    reply: Reply[int] | None = None


class Counter(Actor[Add]):
    name = "counter"

    def __init__(self, capacity: int = 8) -> None:
        super().__init__(capacity)
        self.total = 0
        self.starts = 0
        self.stopped = False

    async def on_start(self, tg: TaskGroup) -> None:
        self.starts += 1
        self.total = 0  # state is reloaded on every (re)start

    async def on_stop(self) -> None:
        self.stopped = True

    async def handle(self, message: Add) -> None:
        if message.amount < 0:
            raise ValueError("negative amounts are a bug")
        self.total += message.amount
        if message.reply is not None:
            message.reply.set(self.total)


async def test_tell_and_ask() -> None:
    counter = Counter()
    async with anyio.create_task_group() as tg:
        await tg.start(Supervisor().run, counter)
        await counter.tell(Add(2))
        assert await counter.ask(lambda reply: Add(3, reply)) == 5
        counter.close()
    assert counter.stopped


async def test_shutdown_drains_queued_messages() -> None:
    counter = Counter(capacity=100)
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            counter.tell_nowait(Add(1))
        counter.close()
        await tg.start(Supervisor().run, counter)
    assert counter.total == 50
    with pytest.raises(ShuttingDownError):
        await counter.tell(Add(1))


async def test_queued_messages_are_handled_as_one_burst_then_on_drained() -> None:
    """What is queued when the actor wakes is handled in a row, with no other task running in
    between; ``on_drained`` runs once the mailbox is empty, once per burst."""

    class Bursts(Counter):
        def __init__(self) -> None:
            super().__init__(capacity=100)
            self.bursts: list[int] = []
            self._seen = 0

        async def handle(self, message: Add) -> None:
            await super().handle(message)
            self._seen += 1

        def on_drained(self) -> None:
            self.bursts.append(self._seen)
            self._seen = 0

    actor = Bursts()
    async with anyio.create_task_group() as tg:
        await tg.start(Supervisor().run, actor)
        for _ in range(5):
            actor.tell_nowait(Add(1))
        await anyio.wait_all_tasks_blocked()
        for _ in range(3):
            actor.tell_nowait(Add(2))
        await anyio.wait_all_tasks_blocked()
        actor.close()
    assert actor.total == 11
    assert actor.bursts == [5, 3]


async def test_tell_with_room_does_not_yield_so_a_run_of_tells_is_one_burst() -> None:
    """Messages told in a row (a worker's outcomes) are all queued before the actor wakes; a
    full mailbox still makes the sender wait, and a cancelled sender queues nothing."""
    bursts: list[int] = []

    class Bursts(Counter):
        seen = 0

        async def handle(self, message: Add) -> None:
            await super().handle(message)
            self.seen += 1

        def on_drained(self) -> None:
            bursts.append(self.seen)
            self.seen = 0

    actor = Bursts(capacity=4)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(Supervisor().run, actor)
            for _ in range(3):
                await actor.tell(Add(1))
            await anyio.wait_all_tasks_blocked()
            assert bursts == [3]
            for _ in range(6):  # more than the mailbox holds: the sender waits for room
                await actor.tell(Add(1))
            await anyio.wait_all_tasks_blocked()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await actor.tell(Add(100))
            await anyio.wait_all_tasks_blocked()
            actor.close()
    assert actor.total == 9
    assert sum(bursts) == 9
    assert bursts[0] == 3


async def test_full_mailbox_is_backpressure() -> None:
    counter = Counter(capacity=2)  # not started: nothing drains it
    counter.tell_nowait(Add(1))
    counter.tell_nowait(Add(1))
    with pytest.raises(MailboxFullError, match="overloaded"):
        counter.tell_nowait(Add(1))
    assert counter.queued == 2
    counter.dispose()


async def test_a_failing_actor_is_restarted_and_the_asker_gets_the_error() -> None:
    counter = Counter()
    supervisor = Supervisor(clock=ManualClock())
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.run, counter)
        assert await counter.ask(lambda reply: Add(4, reply)) == 4
        with pytest.raises(ValueError, match="negative"):
            await counter.ask(lambda reply: Add(-1, reply))
        # Restarted: state reloaded, later messages are served.
        assert await counter.ask(lambda reply: Add(1, reply)) == 1
        counter.close()
    assert counter.starts == 2
    assert supervisor.restarts == {"counter": 1}


async def test_a_crash_loop_stops_the_system_with_a_clear_error() -> None:
    counter = Counter(capacity=20)
    supervisor = Supervisor(clock=ManualClock(), max_restarts=3, window_s=10)
    for _ in range(5):
        counter.tell_nowait(Add(-1))
    with pytest.raises(ExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run, counter)
    [error] = info.value.exceptions
    assert isinstance(error, ActorCrashLoopError)
    assert "counter failed 4 times" in str(error)
    assert "negative amounts are a bug" in str(error)


async def test_restarts_outside_the_window_are_forgiven() -> None:
    clock = ManualClock()
    counter = Counter(capacity=20)
    supervisor = Supervisor(clock=clock, max_restarts=1, window_s=10)
    async with anyio.create_task_group() as tg:
        await tg.start(supervisor.run, counter)
        for _ in range(4):
            with pytest.raises(ValueError, match="negative"):
                await counter.ask(lambda reply: Add(-1, reply))
            clock.advance(11)
        assert await counter.ask(lambda reply: Add(7, reply)) == 7
        counter.close()
    assert supervisor.restarts == {"counter": 4}
