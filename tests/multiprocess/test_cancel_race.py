"""The cancel race across two ``coinbt serve`` processes on one PostgreSQL log: both processes run
tasks and both are sent a DELETE for every task while the tasks finish. Whatever each process
held in memory, every answer must agree with the history the log ends with (DESIGN section 3):
200 ``cancelled`` only for a task whose terminal event is ``Cancelled``, 400 naming ``completed``
only for one that ``Completed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.multiprocess.serve import Served, events_of, serve, wait_status
from tests.system import tiny

pytestmark = pytest.mark.slow

TASKS = 200  # each gets a DELETE from both processes: 400 answers
LANES = 4  # tasks in flight at once
SIZES = (300, 2_000, 8_000, 20_000, 40_000)  # bars: well under 1 to ~15 ms of work
TERMINAL = {"Completed": "completed", "Cancelled": "cancelled", "Failed": "failed"}


@pytest.mark.timeout(150)
async def test_every_cancel_answer_agrees_with_the_final_history(
    tmp_path: Path, pg_dsn: str
) -> None:
    data = tmp_path / "data"
    answers: list[tuple[str, str, int, dict[str, Any]]] = []  # task, process, code, body
    task_ids: list[str] = []
    async with (
        serve(pg_dsn, data, "a", "--workers", "1") as a,
        serve(pg_dsn, data, "b", "--workers", "1") as b,
    ):

        async def cancel(server: Served, task_id: str) -> None:
            response = await server.http.delete(f"/backtests/{task_id}")
            answers.append((task_id, server.name, response.status_code, response.json()))

        async def lane(first: int) -> None:
            # Submit, read the task 0 to 6 times, then a DELETE on each process: the sizes and
            # the reads spread the DELETEs over the run's start, its run and its recording.
            for n in range(first, TASKS, LANES):
                spec = msgspec.to_builtins(tiny(seed=n, bars=SIZES[n % len(SIZES)]))
                server = (a, b)[n % 2]
                response = await server.http.post("/backtests", json=spec)
                assert response.status_code == 202, response.text
                task_id = response.json()["task_id"]
                task_ids.append(task_id)
                for _ in range((n // len(SIZES)) % 7):
                    (await server.http.get(f"/backtests/{task_id}")).raise_for_status()
                if n % 10 == 9:  # some DELETEs come after the end, whatever the machine's speed
                    await wait_status(server, task_id, "completed")
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel, a, task_id)
                    tg.start_soon(cancel, b, task_id)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for first in range(LANES):
                    tg.start_soon(lane, first)
        outcomes: dict[str, str] = {}
        for task_id in task_ids:
            await wait_status(a, task_id, "completed", "cancelled", "failed")
            types = [e["type"] for e in await events_of(a, task_id)]
            terminal = [t for t in types if t in TERMINAL]
            assert len(terminal) == 1, (task_id, types)
            assert types[-1] == terminal[0], (task_id, types)
            outcomes[task_id] = TERMINAL[terminal[0]]
    assert len(answers) == 2 * TASKS
    wrong = []
    for task_id, name, code, answer in answers:
        outcome = outcomes[task_id]
        if code == 200:
            agrees = outcome == "cancelled" and answer["status"] == "cancelled"
        elif code == 400:
            agrees = outcome != "cancelled" and answer["error"]["details"]["status"] == outcome
        else:
            agrees = False
        if not agrees:
            wrong.append((task_id, name, code, answer, outcome))
    assert wrong == []
    # Both kinds of ending happened (every tenth task is cancelled only once it completed; on an
    # idle machine the others are all caught before their end, under load some are not).
    assert {"cancelled", "completed"} <= set(outcomes.values())
