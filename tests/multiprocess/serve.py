"""Real ``coinbt serve`` processes on one PostgreSQL database, for the tests.

``serve(dsn, data_dir, name, *args)`` starts one on a free loopback port (``--port 0``), reads
the URL it prints, and stops it at exit (SIGTERM, then SIGKILL if it lingers). Its log goes to
``<name>.log`` beside the data directory, which a failed start quotes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

ROOT = Path(__file__).parents[2]
HEARTBEAT_S = 0.3


@dataclass
class Served:
    name: str
    url: str
    process: Process
    log: Path
    http: httpx.AsyncClient

    async def instance(self) -> str:
        health = (await self.http.get("/health")).json()
        return str(health["instance"])

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown at all."""
        self.process.kill()
        with anyio.fail_after(30):
            await self.process.wait()


@asynccontextmanager
async def serve(dsn: str, data_dir: Path, name: str, *args: str) -> AsyncIterator[Served]:
    log = data_dir.parent / f"{name}.log"
    command = [
        sys.executable, "-m", "coinbt", "serve", "--db", dsn, "--data-dir", str(data_dir),
        "--port", "0", "--heartbeat", str(HEARTBEAT_S), "--log-level", "warning", *args,
    ]  # fmt: skip
    with log.open("w") as err:
        process = await anyio.open_process(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=data_dir.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert process.stdout is not None
    try:
        try:
            with anyio.fail_after(60):
                line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            line = b""
        if b"serving on" not in line:
            raise AssertionError(f"coinbt serve ({name}) did not start:\n{log.read_text()}")
        url = line.decode().split()[4].rstrip("/")
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Served(name, url, process, log, http)
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()  # SIGTERM: a clean stop
                with anyio.move_on_after(30) as waiting:
                    await process.wait()
                if waiting.cancelled_caught:
                    process.kill()
                    await process.wait()
            await process.aclose()


async def status_on(server: Served, task_id: str) -> str:
    response = await server.http.get(f"/backtests/{task_id}")
    response.raise_for_status()
    return str(response.json()["status"])


async def wait_status(server: Served, task_id: str, *statuses: str, within_s: float = 60) -> str:
    """Wait until ``server`` shows the task in one of ``statuses``, and return that status.

    No timer: the status is read once, then again at each of the task's events on the server's
    ``/events`` stream, which delivers every event (from the start of the log) once that server's
    read models include it.
    """
    with anyio.fail_after(within_s):
        async with server.http.stream(
            "GET",
            "/events",
            params={"after": 0},
            headers={"Accept": "text/event-stream"},
            timeout=None,
        ) as stream:
            stream.raise_for_status()
            status = await status_on(server, task_id)
            if status in statuses:
                return status
            async for line in stream.aiter_lines():
                if line.startswith("data:") and json.loads(line[5:]).get("stream_id") == task_id:
                    status = await status_on(server, task_id)
                    if status in statuses:
                        return status
    raise AssertionError(f"{server.name}'s event stream ended before {task_id} was {statuses}")


async def events_of(server: Served, task_id: str) -> list[dict[str, Any]]:
    """The task's whole history, page by page."""
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        response = await server.http.get(
            f"/backtests/{task_id}/events", params={"after": after, "limit": 1000}
        )
        response.raise_for_status()
        page = response.json()
        events += page["events"]
        after = page["next_after"]
    return events


async def coinbt(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run a ``coinbt`` command to completion (``check=False``)."""
    return await anyio.run_process(
        [sys.executable, "-m", "coinbt", *args],
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
