"""Worker processes die with the service: a ``coinbt serve`` killed by SIGKILL (no clean shutdown
at all) leaves no backtest process behind, whether it was busy or idle."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import msgspec
import pytest

from tests.multiprocess.serve import serve, wait_status
from tests.system import long

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on process ids (Linux)"),
]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def is_worker(pid: int) -> bool:
    return b"coinbt.executor._child" in Path(f"/proc/{pid}/cmdline").read_bytes()


async def exited(pid: int) -> None:
    """Return once process ``pid`` has exited (a pidfd turns readable then; no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already
    try:
        await anyio.wait_readable(fd)
    finally:
        os.close(fd)


async def test_sigkill_of_the_service_takes_its_worker_processes_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    async with serve(str(data / "coinbt.db"), data, "served", "--workers", "2") as server:
        response = await server.http.post("/backtests", json=msgspec.to_builtins(long()))
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        # One worker process is busy in the engine, the other idle, waiting for a job.
        assert await wait_status(server, task_id, "running") == "running"
        workers = [pid for pid in children_of(server.process.pid) if is_worker(pid)]
        assert len(workers) == 2, workers
        await server.kill()
        with anyio.fail_after(30):
            for pid in workers:
                await exited(pid)
