"""A small actor layer on anyio: bounded mailboxes, tell and ask, supervision.

An actor is an object with a mailbox (a bounded memory object stream) and a ``handle`` coroutine.
Nothing else touches its state: other code *tells* it a message (``tell``, fire and forget) or
*asks* (``ask``: the message carries a one-shot :class:`Reply` the actor answers). A full mailbox is
backpressure: ``tell_nowait`` raises ``MailboxFullError`` instead of waiting, which the HTTP layer
turns into 429.

A :class:`Supervisor` runs actors in one task group. An actor whose ``handle`` raises is restarted
(``on_start`` runs again, so it reloads its state) and the error is logged; the message that raised
gets the error as its reply. More than ``max_restarts`` restarts within ``window_s`` seconds is a
crash loop: the supervisor stops every actor and raises :class:`ActorCrashLoopError`.
Shutdown closes the mailboxes; each actor finishes the messages already queued, then returns.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from coinbt.clock import Clock, SystemClock
from coinbt.errors import ActorCrashLoopError, MailboxFullError, ShuttingDownError

__all__ = (
    "Actor",
    "ActorCrashLoopError",
    "MailboxFullError",
    "Reply",
    "Supervisor",
)

log = logging.getLogger("coinbt.actors")

T = TypeVar("T")
M = TypeVar("M")


class Reply(Generic[T]):
    """A one-shot answer slot: the asker awaits :meth:`wait`, the actor calls ``set``/``fail``."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Actor(Generic[M]):
    """Base class: subclasses implement ``handle`` and may override ``on_start``/``on_stop``."""

    name = "actor"

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._send: MemoryObjectSendStream[M]
        self._receive: MemoryObjectReceiveStream[M]
        self._send, self._receive = anyio.create_memory_object_stream[M](capacity)

    # --- the outside's view ----------------------------------------------------------------------

    async def tell(self, message: M) -> None:
        """Queue ``message``, waiting for room if the mailbox is full.

        With room, the caller does not yield to the event loop (a cancelled caller still stops
        here): a sender telling several messages in a row has them all queued before the actor
        wakes, so it handles them as one burst (a worker's outcomes: one wave of appends)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        try:
            self._send.send_nowait(message)
            return
        except anyio.WouldBlock:
            pass
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as e:
            raise ShuttingDownError(f"{self.name} is stopping") from e
        try:
            await self._send.send(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as e:
            raise ShuttingDownError(f"{self.name} is stopping") from e

    def tell_nowait(self, message: M) -> None:
        """Queue ``message`` or raise ``MailboxFullError`` at once."""
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock as e:
            raise MailboxFullError(f"{self.name} is overloaded; retry later") from e
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as e:
            raise ShuttingDownError(f"{self.name} is stopping") from e

    async def ask(self, make: Callable[[Reply[T]], M], *, wait_for_room: bool = True) -> T:
        """Send ``make(reply)`` and wait for the answer (re-raising the actor's error)."""
        reply: Reply[T] = Reply()
        message = make(reply)
        if wait_for_room:
            await self.tell(message)
        else:
            self.tell_nowait(message)
        return await reply.wait()

    @property
    def queued(self) -> int:
        return self._send.statistics().current_buffer_used

    def close(self) -> None:
        """Take no more messages; the actor drains what is queued, then stops."""
        self._send.close()

    def dispose(self) -> None:
        """Close both ends of the mailbox (after the actor stopped, or if it never ran)."""
        self._send.close()
        self._receive.close()

    # --- the actor's side ------------------------------------------------------------------------

    async def on_start(self, tg: TaskGroup) -> None:
        """(Re)load state before handling messages; ``tg`` may hold the actor's helper tasks."""

    async def on_stop(self) -> None:
        """Runs after the mailbox is drained on shutdown."""

    async def handle(self, message: M) -> None:
        raise NotImplementedError

    def on_drained(self) -> None:
        """Called after a burst of messages, once the mailbox is empty (nothing awaited: start
        in the task group what the burst collected, e.g. its appends as one)."""

    def on_error(self, message: M, error: BaseException) -> None:
        """Called when ``handle`` raised: by default, fail the message's reply if it has one."""
        reply = getattr(message, "reply", None)
        if isinstance(reply, Reply):
            reply.fail(error)


class Supervisor:
    """Runs actors, restarting a failed one; a crash loop stops everything."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_restarts: int = 5,
        window_s: float = 10.0,
    ) -> None:
        self._clock = clock or SystemClock()
        self._max_restarts = max_restarts
        self._window_s = window_s
        self.restarts: dict[str, int] = {}

    async def run(
        self,
        actor: Actor[Any],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run ``actor`` until its mailbox is closed and drained. Use with ``tg.start``."""
        try:
            await self._supervise(actor, task_status)
        finally:
            actor.dispose()

    async def _supervise(self, actor: Actor[Any], task_status: TaskStatus[None]) -> None:
        recent: deque[float] = deque()
        started = False
        while True:
            failure: BaseException | None = None
            try:
                async with anyio.create_task_group() as helpers:
                    await actor.on_start(helpers)
                    if not started:
                        started = True
                        task_status.started()
                    failure = await self._loop(actor)
                    helpers.cancel_scope.cancel()
            except* Exception as group:
                if not started:
                    raise  # an actor that cannot start stops the system at once
                failure = group.exceptions[0] if len(group.exceptions) == 1 else group
            if failure is None:
                await actor.on_stop()
                return
            now = self._clock.monotonic()
            recent.append(now)
            while recent and now - recent[0] > self._window_s:
                recent.popleft()
            self.restarts[actor.name] = self.restarts.get(actor.name, 0) + 1
            log.error("actor %s failed; restarting it", actor.name, exc_info=failure)
            if len(recent) > self._max_restarts:
                raise ActorCrashLoopError(
                    f"actor {actor.name} failed {len(recent)} times in {self._window_s:g} s "
                    f"(last error: {type(failure).__name__}: {failure}); stopping the system"
                ) from failure

    async def _loop(self, actor: Actor[Any]) -> BaseException | None:
        """Handle messages until the mailbox ends (None) or ``handle`` raises (the error).

        The messages already queued are handled as one burst, without a trip through the event
        loop between two of them (``receive`` yields once per message: a burst of a worker's
        outcomes cost one loop iteration each); ``on_drained`` runs when the mailbox is empty.
        """
        receive = actor._receive
        async for message in receive:
            while True:
                try:
                    await actor.handle(message)
                except Exception as e:
                    actor.on_error(message, e)
                    return e
                try:
                    message = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            actor.on_drained()
        return None
