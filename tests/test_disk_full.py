"""The database's filesystem fills up while the service runs (a real, small tmpfs).

Appends fail with a clear error, the API answers 503 to writes and keeps serving reads, nothing
committed is damaged, and once space returns the service takes writes again. Mounting needs
root: elsewhere the test is skipped and says why.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.errors import DatabaseError
from coinbt.executor.base import Job
from tests.actors.test_worker_faults import hooked
from tests.api.helpers import http_client
from tests.system import system_factory, tiny, wait_status

SIZE = "8m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the suite as root to test disk full)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem has no byte left; how many bytes it took."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (65536, 4096, 1):  # big chunks, then the last few bytes too
            chunk = b"\0" * size
            while True:
                try:
                    written += f.write(chunk) or 0
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return written


def spec_json(seed: int) -> dict[str, object]:
    return msgspec.to_builtins(tiny(seed=seed))  # type: ignore[no-any-return]


async def test_a_full_disk_refuses_writes_serves_reads_and_recovers(small_disk: Path) -> None:
    open_system = system_factory(small_disk)
    async with open_system(workers=1) as system:
        done = [(await system.submit(tiny(seed=n))).task_id for n in range(1, 4)]
        await system.drain()
    filler = small_disk / "filler"
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        before = await system.store.last_position()
        await anyio.to_thread.run_sync(fill, filler)
        # Writes go on while SQLite's write-ahead log has room, then fail: 503, clear error.
        refused, accepted = None, 0
        for seed in range(100, 3100):
            response = await http.post("/backtests", json=spec_json(seed))
            if response.status_code != 202:
                refused = response
                break
            accepted += 1
        assert refused is not None, "3,000 submissions fitted on a full disk"
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "database_error"
        assert "disk is full" in error["message"]
        assert "retry-after" in refused.headers
        # Reads are served all the while.
        for task_id in done:
            read = await http.get(f"/backtests/{task_id}")
            assert read.status_code == 200
            assert read.json()["status"] == "completed"
        assert (await http.get("/backtests?status=completed")).status_code == 200
        assert (await http.get("/health")).status_code == 200
        # Space returns: writes are taken again.
        await anyio.Path(filler).unlink()
        again = await http.post("/backtests", json=spec_json(99))
        assert again.status_code == 202, again.text
        assert await system.store.last_position() > before
    # Nothing committed was damaged; the queued tasks run after a restart.
    async with open_system(workers=1) as system:
        await system.drain()
        for task_id in done:
            assert (await system.task(task_id)).status == "completed"
        counts = {status: n for status, n in (await system.read.counts()).items() if n}
        assert counts == {"completed": len(done) + accepted + 1}
    assert verify_file(system.config.db).ok
    assert verify_read_models(system.config.db).ok


async def test_a_run_that_ends_while_the_disk_is_full_is_recorded_when_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    """The run finishes while its outcome cannot be appended: the worker keeps trying, and the
    outcome is in the log once space returns, without a restart (before, it was dropped and the
    task stayed running until the next start re-queued it)."""
    factory, made = hooked()
    gate = anyio.Event()
    at_the_gate = anyio.Event()

    async def hold(job: Job) -> None:
        at_the_gate.set()
        await gate.wait()

    open_system = system_factory(small_disk)
    data_dir = tmp_path / "data"  # staging and artifacts off the full disk: only the log is full
    async with open_system(workers=1, executor=factory, data_dir=data_dir) as system:
        made[0].before_run = hold
        view = await system.submit(tiny(seed=1))
        with anyio.fail_after(30):
            await at_the_gate.wait()
        # The read model shows the run before the disk fills (else its Started may not be
        # projected yet, and the status read below says queued).
        assert await wait_status(system, view.task_id, "running") == "running"
        filler = small_disk / "filler"
        await anyio.to_thread.run_sync(fill, filler)
        for seed in range(100, 3100):  # until the log has no room left
            try:
                await system.submit(tiny(seed=seed))
            except DatabaseError:
                break
        else:
            pytest.fail("3,000 submissions fitted on a full disk")
        refused = anyio.Event()

        class Refusals(logging.Handler):  # the worker's warning, logged on the event loop
            def emit(self, record: logging.LogRecord) -> None:
                if "recording the outcome of" in record.getMessage():
                    refused.set()

        handler = Refusals()
        logging.getLogger("coinbt.worker").addHandler(handler)
        try:
            gate.set()  # the run ends now; its outcome cannot be appended
            with anyio.fail_after(30):
                await refused.wait()
        finally:
            logging.getLogger("coinbt.worker").removeHandler(handler)
        assert (await system.task(view.task_id)).status == "running"
        await anyio.Path(filler).unlink()
        status = await wait_status(system, view.task_id, "completed", "failed")
        task = await system.task(view.task_id)
        # Completed, or (when its artifact rows could not be written either) honestly failed.
        assert status == "completed" or task.error_type == "artifacts_unrecorded", task
    assert verify_file(system.config.db).ok
