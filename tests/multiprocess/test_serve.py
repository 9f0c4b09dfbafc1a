"""Two ``coinbt serve`` processes (real subprocesses, different ports) on one PostgreSQL database
and one shared data directory: DESIGN section 3's cancel cases across processes, cancels racing
completions, a process without workers, a process SIGKILLed mid-run, and the log and read models
checked by ``coinbt audit verify`` and ``coinbt replay --verify`` at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from coinbt import engine
from coinbt.events import DataSpec, TaskSpec
from coinbt.store.instances import owner_of
from tests.multiprocess.serve import Served, coinbt, events_of, serve, wait_status
from tests.system import long, tiny

pytestmark = pytest.mark.slow

TERMINAL = ("Completed", "Failed", "Cancelled")


def body(spec: Any) -> Any:
    return msgspec.to_builtins(spec)


async def submit(server: Served, spec: Any) -> str:
    response = await server.http.post("/backtests", json=body(spec))
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


async def running_here(server: Served) -> int:
    metrics = (await server.http.get("/metrics")).text
    [line] = [line for line in metrics.splitlines() if line.startswith("coinbt_running ")]
    return int(line.split()[1])


async def check_log_and_read_models(dsn: str) -> None:
    audit = await coinbt("audit", "verify", "--db", dsn)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.startswith(b"ok:")
    replay = await coinbt("replay", "--db", dsn, "--verify")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert b"read models match the log" in replay.stdout


async def same_reads(a: Served, b: Served, task_ids: list[str]) -> None:
    """Every read answers the same on both processes."""
    for task_id in task_ids:
        ours, theirs = (
            (await a.http.get(f"/backtests/{task_id}")),
            (await b.http.get(f"/backtests/{task_id}")),
        )
        assert ours.json() == theirs.json()
        assert await events_of(a, task_id) == await events_of(b, task_id)
    for path in ("/backtests?limit=500", "/events?limit=1000"):
        assert (await a.http.get(path)).json() == (await b.http.get(path)).json()


async def test_cancel_cases_across_processes(tmp_path: Path, pg_dsn: str) -> None:
    """Submit on A (the only one with a worker), cancel on B."""
    data = tmp_path / "data"
    async with (
        serve(pg_dsn, data, "a", "--workers", "1") as a,
        serve(pg_dsn, data, "b", "--workers", "0") as b,
    ):
        assert await a.instance() != await b.instance()
        # running: 200, cancelled at once, and A's run is stopped
        busy = await submit(a, long())
        assert await wait_status(b, busy, "running") == "running"
        # queued (A's one worker is busy, B has none): 200, cancelled, it never starts
        waiting = await submit(a, tiny(seed=2))
        assert await wait_status(b, waiting, "queued") == "queued"
        cancelled_queued = await b.http.delete(f"/backtests/{waiting}")
        assert cancelled_queued.status_code == 200
        assert cancelled_queued.json()["status"] == "cancelled"
        assert (await a.http.get(f"/backtests/{waiting}")).json() == cancelled_queued.json()
        cancelled_running = await b.http.delete(f"/backtests/{busy}", params={"reason": "stop"})
        assert cancelled_running.status_code == 200
        assert cancelled_running.json()["status"] == "cancelled"
        assert cancelled_running.json()["reason"] == "stop"
        assert (await a.http.get(f"/backtests/{busy}")).json()["status"] == "cancelled"
        # completed and failed: 400 naming the status; nothing appended
        done = await submit(a, tiny(seed=3))  # runs on A's one worker: the cancelled run let go
        assert await wait_status(b, done, "completed") == "completed"
        assert await running_here(a) == 0
        failed = await submit(a, long(timeout_s=0.2))
        assert await wait_status(b, failed, "failed") == "failed"
        last = (await b.http.get("/health")).json()["last_position"]
        for task_id, status in ((done, "completed"), (failed, "failed")):
            refused = await b.http.delete(f"/backtests/{task_id}")
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert (error["code"], error["details"]["status"]) == ("invalid_transition", status)
            assert status in error["message"]
        # unknown: 404; cancelled again: 200, unchanged, nothing appended
        assert (await b.http.delete("/backtests/no-such-task")).status_code == 404
        again = await b.http.delete(f"/backtests/{waiting}")
        assert again.status_code == 200
        assert again.json() == cancelled_queued.json()
        assert (await a.http.get("/health")).json()["last_position"] == last
        assert [e["type"] for e in await events_of(a, waiting)] == ["Queued", "Cancelled"]
        assert [e["type"] for e in await events_of(a, busy)] == ["Queued", "Started", "Cancelled"]
        await same_reads(a, b, [busy, waiting, done, failed])
    await check_log_and_read_models(pg_dsn)


async def test_cancels_race_completions_across_processes(tmp_path: Path, pg_dsn: str) -> None:
    """Both run tasks; every task gets a cancel on B while they finish. Each task records exactly
    one outcome, and the cancel's answer says which one."""
    data = tmp_path / "data"
    async with (
        serve(pg_dsn, data, "a", "--workers", "1") as a,
        serve(pg_dsn, data, "b", "--workers", "1") as b,
    ):
        # Tiny runs and longer ones (a tenth of a second), so that when the cancels arrive some
        # tasks are done, some running and some still queued.
        longer = {"bars": 300_000, "strategy": "buy_and_hold", "params": {}}
        task_ids = [
            await submit((a, b)[n % 2], tiny(seed=n, **({} if n % 3 else longer)))
            for n in range(36)
        ]
        answers: dict[str, int] = {}

        async def cancel(task_id: str) -> None:
            answers[task_id] = (await b.http.delete(f"/backtests/{task_id}")).status_code

        async with anyio.create_task_group() as tg:
            for task_id in task_ids:
                tg.start_soon(cancel, task_id)
        assert set(answers.values()) <= {200, 400}
        for task_id in task_ids:
            status = await wait_status(a, task_id, "completed", "cancelled")
            types = [e["type"] for e in await events_of(a, task_id)]
            terminal = [t for t in types if t in TERMINAL]
            assert len(terminal) == 1, types
            assert types[-1] == terminal[0]
            assert types.count("Started") <= 1
            assert status == ("cancelled" if answers[task_id] == 200 else "completed")
        await same_reads(a, b, task_ids)
    await check_log_and_read_models(pg_dsn)


async def test_a_process_without_workers_hands_its_tasks_to_another(
    tmp_path: Path, pg_dsn: str
) -> None:
    data = tmp_path / "data"
    csv = tmp_path / "ETHUSDT-1h.csv"
    bars = engine.synthetic(500, seed=5, interval="1h")
    rows = zip(*(c.tolist() for c in (bars.ts, bars.open, bars.high, bars.low, bars.close,
                                      bars.volume)), strict=True)  # fmt: skip
    csv.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        ",".join(map(repr, row)) + "\n" for row in rows))  # fmt: skip
    imported = await coinbt(
        "data", "import", str(csv), "--name", "ETHUSDT-1h", "--db", pg_dsn, "--data-dir", str(data)
    )
    assert imported.returncode == 0, imported.stderr
    async with (
        serve(pg_dsn, data, "a", "--workers", "0") as a,
        serve(pg_dsn, data, "b", "--workers", "1") as b,
    ):
        assert [d["name"] for d in (await a.http.get("/datasets")).json()["datasets"]] == [
            "ETHUSDT-1h"
        ]
        on_dataset = TaskSpec(
            strategy="sma_cross",
            params={"fast": 5, "slow": 20},
            data=DataSpec(dataset="ETHUSDT-1h"),
        )
        task_ids = [await submit(a, tiny(seed=n)) for n in range(3)]
        task_ids.append(await submit(a, on_dataset))
        runner = await b.instance()
        for task_id in task_ids:
            assert await wait_status(a, task_id, "completed") == "completed"
            started = [e for e in await events_of(a, task_id) if e["type"] == "Started"]
            assert [owner_of(e["data"]["worker_id"]) for e in started] == [runner]
        # Its artifacts were stored by B, and A reads them from the shared data directory.
        equity = await a.http.get(f"/backtests/{task_ids[-1]}/equity")
        assert equity.status_code == 200, equity.text
        assert len(equity.json()["equity"]) == 500
        await same_reads(a, b, task_ids)


async def test_sigkill_mid_run_and_the_other_process_finishes_the_task(
    tmp_path: Path, pg_dsn: str
) -> None:
    data = tmp_path / "data"
    async with (
        serve(pg_dsn, data, "a", "--workers", "1") as a,
        serve(pg_dsn, data, "b", "--workers", "1") as b,
    ):
        instances = {await a.instance(): a, await b.instance(): b}
        # buy and hold on 3M bars: about 1.5 s of work, one fill
        task_id = await submit(a, tiny(bars=3_000_000, strategy="buy_and_hold", params={}))
        assert await wait_status(a, task_id, "running") == "running"
        [started] = [e for e in await events_of(a, task_id) if e["type"] == "Started"]
        victim = instances[str(owner_of(started["data"]["worker_id"]))]
        survivor = b if victim is a else a
        await victim.kill()
        assert await wait_status(survivor, task_id, "completed") == "completed"
        history = await events_of(survivor, task_id)
        assert [e["type"] for e in history] == [
            "Queued",
            "Started",
            "Queued",
            "Started",
            "Completed",
        ]
        assert history[2]["data"]["attempt"] == 2
        assert owner_of(history[3]["data"]["worker_id"]) == await survivor.instance()
        view = (await survivor.http.get(f"/backtests/{task_id}")).json()
        assert view["attempt"] == 2
        # The survivor also writes the read models now, if the victim did: reads keep up.
        follow_up = await submit(survivor, tiny())
        assert await wait_status(survivor, follow_up, "completed") == "completed"
    await check_log_and_read_models(pg_dsn)
