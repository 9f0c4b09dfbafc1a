"""Live progress shared between the processes on one PostgreSQL database.

Progress is not an event, so it does not travel through the log: each process announces the
progress of its own runs with ``NOTIFY coinbt_progress`` (its whole set, at most every
``interval_s`` while it changes, and again every ``renew_s`` while it has runs) and listens for
the others' announcements. A process that stops announcing (it stopped, or lost the database) is
forgotten after ``valid_s``. Nothing here can change a task: at worst a progress bar is stale for
a few seconds.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from anyio.abc import TaskStatus

from coinbt.backends.postgres.schema import DRIVER_ERRORS, connect
from coinbt.errors import DatabaseError
from coinbt.projections.live import LiveProgress

__all__ = ("CHANNEL", "ProgressRelay")

CHANNEL = "coinbt_progress"
_MAX_RUNS = 100  # per announcement: NOTIFY payloads are limited to 8,000 bytes

log = logging.getLogger("coinbt.progress")


class ProgressRelay:
    def __init__(
        self,
        dsn: str,
        progress: LiveProgress,
        instance: str,
        *,
        interval_s: float = 0.25,
        renew_s: float = 2.0,
        valid_s: float = 6.0,
    ) -> None:
        self._dsn = dsn
        self._progress = progress
        self._instance = instance
        self._interval_s = interval_s
        self._renew_s = renew_s
        self._valid_s = valid_s
        self.announced = 0  # announcements sent (for tests and /metrics-style checks)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Announce and listen until cancelled, reconnecting when the connection is lost."""
        started = False
        backoff = 0.1
        while True:
            try:
                conn = await connect(self._dsn)
            except DatabaseError as e:
                if not started:
                    raise
                log.warning("progress relay: %s; retrying in %.1f s", e, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                await conn.add_listener(CHANNEL, self._heard)
                backoff = 0.1
                if not started:
                    started = True
                    task_status.started()
                await self._announce(conn)
            except DRIVER_ERRORS as e:
                log.warning("progress relay lost its connection (%s); reconnecting", e)
            finally:
                with anyio.CancelScope(shield=True):
                    await conn.close(timeout=5)

    async def _announce(self, conn: Any) -> None:
        sent: dict[str, float] | None = None
        renew_at = 0.0
        while True:
            changed = self._progress.changed_hint()
            runs = dict(list(self._progress.local().items())[:_MAX_RUNS])
            now = anyio.current_time()
            if runs != sent or (runs and now >= renew_at):
                payload = json.dumps({"instance": self._instance, "runs": runs})
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                self.announced += 1
                sent, renew_at = runs, now + self._renew_s
                await anyio.sleep(self._interval_s)  # at most one announcement per interval
                continue
            with anyio.move_on_after(max(renew_at - now, 0.0) if runs else None):
                await changed.wait()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            instance = str(message["instance"])
            runs = {str(task): float(value) for task, value in dict(message["runs"]).items()}
        except (ValueError, KeyError, TypeError) as e:
            log.warning("progress relay: ignoring a malformed announcement (%s)", e)
            return
        if instance != self._instance:
            self._progress.replace_remote(instance, runs, self._valid_s)
