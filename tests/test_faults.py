"""Faults of docs/faults.md that no other test file provokes: a worker process killed from
outside, and the wall clock stepping back (an NTP correction) while the service runs."""

from __future__ import annotations

import os
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from coinbt.backends.sqlite import verify_file
from coinbt.backends.sqlite.rebuild import verify_read_models
from coinbt.executor.local import LocalProcessExecutor
from tests.system import OpenSystem, long, system_factory, tiny, types_of, wait_status


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


class SteppedClock:
    """Wall time that the test sets anywhere, backwards too, as an NTP step does; monotonic
    time (durations, timeouts, backoff) does not move with it."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self._mono = 0.0

    def now(self) -> datetime:
        current = self.wall
        self.wall += timedelta(milliseconds=1)
        self._mono += 0.001
        return current

    def monotonic(self) -> float:
        return self._mono


async def test_a_worker_process_killed_from_outside_fails_its_task_and_is_replaced(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as system:
        view = await system.submit(long())
        executor = system.executor
        assert isinstance(executor, LocalProcessExecutor)
        with anyio.fail_after(30):
            pid = await executor.wait_running(view.task_id)
        os.kill(pid, signal.SIGKILL)  # the OOM killer, an operator's kill -9
        assert await wait_status(system, view.task_id, "failed") == "failed"
        failed = await system.task(view.task_id)
        assert failed.error_type == "worker_crashed"
        assert failed.error is not None
        assert "died" in failed.error
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Failed"]
        follow_up = await system.submit(tiny())  # on a fresh process
        assert await wait_status(system, follow_up.task_id, "completed") == "completed"


async def test_the_wall_clock_stepping_back_changes_no_order_and_breaks_no_check(
    open_system: OpenSystem,
) -> None:
    start = datetime(2024, 6, 1, 12, tzinfo=UTC)
    clock = SteppedClock(start)
    async with open_system(workers=1, clock=clock) as system:
        first = await system.submit(tiny(seed=1))
        await system.drain()
        clock.wall = start - timedelta(hours=6)  # the clock is stepped back
        second = await system.submit(tiny(seed=2))
        await system.drain()
        one, two = await system.task(first.task_id), await system.task(second.task_id)
        assert one.status == two.status == "completed"
        assert two.created_at < one.created_at  # the records say what the clock said...
        events = await system.store.read_all(0, 100)
        positions = [e.position for e in events]
        assert positions == sorted(positions) == list(range(1, len(events) + 1))  # ...the log's
        # order does not follow the clock, and neither does the newest-first list.
        listed = [t.task_id for t in await system.read.tasks(limit=10)]
        assert listed == [second.task_id, first.task_id]
    assert verify_file(system.config.db).ok
    assert verify_read_models(system.config.db).ok


def test_every_test_the_fault_matrix_names_exists() -> None:
    """docs/faults.md cites tests as proof: each one must be a test function in that file."""
    root = Path(__file__).parents[1]
    text = (root / "docs" / "faults.md").read_text()
    cited = re.findall(r"`([a-z_/]+\.py)::([a-z_0-9]+)`", text)
    assert len(cited) >= 20
    for path, name in cited:
        source = (root / "tests" / path).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{path}::{name}"
