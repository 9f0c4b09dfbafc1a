"""Liveness of the ``coinbt serve`` processes sharing one PostgreSQL database.

Each process registers a row in ``instances`` (``id SERIAL``: ids never collide) and takes the
session-level advisory lock ``(INSTANCE_LOCKS, id)`` on a connection it keeps for that alone.
PostgreSQL releases the lock when that session ends: when the process exits, is killed, or its
machine or network goes away (once the server notices: at once for a closed socket, after the
server's TCP keepalive settings for a silent peer). So "its lock can be taken" means "it is gone".

:meth:`PgInstance.take_if_dead` tries exactly that on a second connection, and keeps the lock
while the caller acts for the dead process (re-queues its tasks, adopts its pending uploads), so
two survivors never act for the same dead process at once. If this process loses its own lock's
connection, it reconnects and waits for the lock again; meanwhile the others may take over its
tasks (their appends win the log's version check, and its late results are refused).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus

from coinbt.backends.postgres.schema import DRIVER_ERRORS, INSTANCE_LOCKS, connect, describe
from coinbt.clock import Clock, SystemClock, to_epoch_us
from coinbt.errors import DatabaseError

__all__ = ("PgInstance", "open_instance")

log = logging.getLogger("coinbt.instances")

_RECONNECT_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, *DRIVER_ERRORS)


def _number(instance_id: str) -> int | None:
    if not instance_id.startswith("i"):
        return None
    try:
        n = int(instance_id[1:])
    except ValueError:
        return None
    return n if 0 < n < 2**31 else None


class PgInstance:
    """This process's registration (see the module docstring). Open with :func:`open_instance`."""

    def __init__(self, dsn: str, number: int, holder: Any) -> None:
        self.dsn = dsn
        self.number = number
        self._where = f"PostgreSQL at {describe(dsn)}"
        self._holder = holder
        self._checker: Any = None
        self._checking = anyio.Lock()

    @property
    def instance_id(self) -> str:
        return f"i{self.number}"

    @asynccontextmanager
    async def take_if_dead(self, instance_id: str) -> AsyncIterator[bool]:
        n = _number(instance_id)
        if n is None or n == self.number:
            yield False
            return
        async with self._checking:
            conn = await self._checker_connection()
            try:
                taken = bool(
                    await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", INSTANCE_LOCKS, n)
                )
            except DRIVER_ERRORS as e:
                await self._drop_checker()
                raise DatabaseError(f"asking {self._where} about {instance_id} failed: {e}") from e
        try:
            yield taken
        finally:
            if taken:
                with anyio.CancelScope(shield=True):
                    async with self._checking:
                        try:
                            await conn.execute(
                                "SELECT pg_advisory_unlock($1, $2)", INSTANCE_LOCKS, n
                            )
                        except DRIVER_ERRORS:
                            await self._drop_checker()  # the lock went with the session

    async def _checker_connection(self) -> Any:
        if self._checker is None or self._checker.is_closed():
            self._checker = await connect(self.dsn)
        return self._checker

    async def _drop_checker(self) -> None:
        conn, self._checker = self._checker, None
        if conn is not None:
            conn.terminate()

    async def _hold(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep the lock: when its connection is lost, reconnect and take it again."""
        task_status.started()
        backoff = 0.1
        while True:
            lost = anyio.Event()
            self._holder.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await lost.wait()
            log.error("lost the session holding instance %s's lock; taking it again", self.number)
            while True:
                conn: Any = None
                try:
                    conn = await connect(self.dsn)
                    await conn.execute(
                        "SELECT pg_advisory_lock($1, $2)", INSTANCE_LOCKS, self.number
                    )
                except _RECONNECT_ERRORS as e:
                    if conn is not None:
                        conn.terminate()
                    log.warning("taking instance %s's lock failed (%s)", self.number, e)
                    await anyio.sleep(backoff)  # a back-off while the server is away
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._holder, backoff = conn, 0.1
                break

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            for conn in (self._checker, self._holder):
                if conn is not None and not conn.is_closed():
                    try:
                        await conn.close(timeout=5)
                    except DRIVER_ERRORS:
                        conn.terminate()


@asynccontextmanager
async def open_instance(dsn: str, *, clock: Clock | None = None) -> AsyncIterator[PgInstance]:
    """Register this process in the (migrated) database at ``dsn`` and hold its lock until exit."""
    clock = clock or SystemClock()
    conn = await connect(dsn)
    try:
        number = await conn.fetchval(
            "INSERT INTO instances (host, pid, started_at) VALUES ($1, $2, $3) RETURNING id",
            socket.gethostname(),
            os.getpid(),
            to_epoch_us(clock.now()),
        )
        await conn.execute("SELECT pg_advisory_lock($1, $2)", INSTANCE_LOCKS, number)
    except DRIVER_ERRORS as e:
        conn.terminate()
        raise DatabaseError(f"registering in PostgreSQL at {describe(dsn)} failed: {e}") from e
    instance = PgInstance(dsn, int(number), conn)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(instance._hold)
            try:
                yield instance
            finally:
                tg.cancel_scope.cancel()
    finally:
        await instance.close()
