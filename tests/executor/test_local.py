"""The local process executor: what the split sweeps added, and a process-lifetime regression."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import anyio
import pytest
from anyio._backends import _asyncio

from coinbt.executor.local import open_local_executor
from tests.executor.helpers import alive, job


async def test_idle_worker_processes_survive_the_threads_anyio_retires(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A child dies with the *thread* that started it (PR_SET_PDEATHSIG), and anyio ends worker
    # threads idle for 10 s: processes started from worker threads were SIGKILLed while idle.
    monkeypatch.setattr(_asyncio.WorkerThread, "MAX_IDLE_TIME", 0)
    async with open_local_executor(2) as executor:
        with anyio.fail_after(30):
            results = []

            async def run(name: str) -> None:
                results.append(
                    await executor.run(job(str(tmp_path / name), 1_000, task_id=name), _ignore)
                )

            async with anyio.create_task_group() as tg:  # both processes are up and serving
                tg.start_soon(run, "a")
                tg.start_soon(run, "b")
            threads = [t for t in threading.enumerate() if isinstance(t, _asyncio.WorkerThread)]
            for _ in range(3):  # use 4 threads at once, then 1: the call retires the 3 others
                barrier = threading.Barrier(4)
                async with anyio.create_task_group() as tg:
                    for _ in range(4):
                        tg.start_soon(anyio.to_thread.run_sync, barrier.wait, 10)
                await anyio.to_thread.run_sync(lambda: None)
            for thread in threads:
                if thread.stopping:
                    thread.join(10)  # gone: any child it started got its SIGKILL by now
            pids = [slot.pid for slot in executor._idle._state.buffer]  # type: ignore[attr-defined]
            assert len(pids) == 2
            assert all(alive(pid) and _state(pid) != "Z" for pid in pids)
            await run("c")
    assert len({r.result_digest for r in results}) == 1
    assert executor.started_processes == 2  # none died, none was replaced


def _ignore(fraction: float) -> None:
    pass


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split()[2]


async def test_a_worker_process_whose_service_died_before_it_started_exits() -> None:
    """The kernel's parent-death signal only covers a death after the child asked for it: a
    child whose parent is already gone (here: it is told a parent it does not have) exits."""
    parent, child = socket.socketpair()
    with parent, child:
        done = await anyio.run_process(
            [sys.executable, "-m", "coinbt.executor._child", str(child.fileno()), "1"],
            pass_fds=[child.fileno()],
            check=False,
        )
    assert done.returncode == 1
