"""``coinbt audit rerun``: completed tasks run again from the log's inputs, digests compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from coinbt.cli import main
from coinbt.demo import submit_demo
from coinbt.events import DataSpec, Queued, TaskSpec
from tests.backends.test_datasets import csv_of
from tests.system import OpenSystem, system_factory, tiny, wait_status


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_every_demo_task_reruns_to_its_recorded_digest(
    open_system: OpenSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with open_system(workers=2) as system:
        submitted = await submit_demo(system)
        await system.drain()
        completed = [v.task_id for v in await system.read.tasks(status="completed", limit=100)]
    assert submitted > 0
    assert len(completed) == submitted
    db = str(tmp_path / "coinbt.db")
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", "--all", "--db", db, "--json"
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["checked"] == submitted
    assert report["mismatches"] == 0
    assert sorted(r["task_id"] for r in report["results"]) == sorted(completed)
    assert all(r["rerun"] == r["recorded"] for r in report["results"])
    # One task, and a sample, as people read them.
    code, out, _ = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", completed[0], "--db", db
    )
    assert code == 0
    assert out.startswith(f"ok        {completed[0]}")
    assert out.endswith("ok: 1 tasks rerun; every result digest matches the recorded one\n")
    code, out, _ = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", "--sample", "2", "--seed", "1", "--db", db
    )
    assert code == 0
    assert out.count("\nok ") + out.startswith("ok ") == 2


async def test_a_result_that_no_longer_follows_from_its_inputs_is_a_mismatch(
    open_system: OpenSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dataset file under a completed task is replaced by other bars: the rerun's digest
    differs, the command exits 1 and names the task and the first difference."""
    async with open_system(workers=1) as system:
        info = await system.catalog.import_bytes("BTCUSDT-1h", csv_of(300, seed=5))
        other = await system.catalog.import_bytes("ETHUSDT-1h", csv_of(300, seed=6))
        spec = TaskSpec(
            strategy="sma_cross",
            params={"fast": 5, "slow": 20},
            data=DataSpec(dataset="BTCUSDT-1h"),
        )
        view = await system.submit(spec)
        same = await system.submit(tiny())
        assert await wait_status(system, view.task_id, "completed") == "completed"
        await system.drain()
        path, replacement = system.catalog.path_of(info), system.catalog.path_of(other)
    await anyio.to_thread.run_sync(shutil.copyfile, replacement, path)
    db = str(tmp_path / "coinbt.db")
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", "--all", "--db", db
    )
    assert code == 1, out + err
    assert f"MISMATCH  {view.task_id}: " in out
    assert f"ok        {same.task_id}" in out
    assert out.endswith("1 of 2 reruns differ from the recorded result\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param([], "ID: give one task ID, or --all, or --sample N", id="nothing"),
        pytest.param(["abc", "--all"], "ID: give one task ID, or --all", id="id-and-all"),
        pytest.param(["--sample", "0"], "--sample: must be at least 1, got 0", id="sample-0"),
        pytest.param(["nope"], "no task with id 'nope'", id="unknown-task"),
    ],
)
async def test_bad_rerun_arguments_exit_2_with_one_line(
    open_system: OpenSystem,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    async with open_system(workers=0) as system:
        await system.submit(tiny())
    db = str(tmp_path / "coinbt.db")
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", *args, "--db", db
    )
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


async def test_a_portfolio_reruns_on_the_versions_queued_recorded(
    open_system: OpenSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Queued pins each dataset of a portfolio at the version it resolved: after a new version
    of one is imported, a rerun of the task still reads the old bars and matches its digest
    (a new submission of the same spec runs on the new version, with another digest)."""
    spec = TaskSpec(
        strategy="sma_cross",
        params={"fast": 5, "slow": 20},
        data=DataSpec(datasets=["BTCUSDT-1h", "ETHUSDT-1h"]),
        size_type="target_percent",
        size=0.4,
    )
    async with open_system(workers=1) as system:
        await system.catalog.import_bytes("BTCUSDT-1h", csv_of(400, seed=5))
        await system.catalog.import_bytes("ETHUSDT-1h", csv_of(300, seed=6))
        first = await system.submit(spec)  # on the 300 hours both cover
        assert await wait_status(system, first.task_id, "completed") == "completed"
        # Version 2 of one: 100 more hours, so a portfolio on it runs 400.
        await system.catalog.import_bytes("ETHUSDT-1h", csv_of(400, seed=6), update=True)
        later = await system.submit(spec)
        assert await wait_status(system, later.task_id, "completed") == "completed"
        await system.drain()
        queued = [(await system.store.read_stream(v.task_id, limit=1))[0] for v in (first, later)]
        results = [(await system.task(v.task_id)).result or {} for v in (first, later)]
    assert all(isinstance(q.event, Queued) for q in queued)
    assert [q.event.spec.data.versions for q in queued if isinstance(q.event, Queued)] == [
        [1, 1],
        [1, 2],
    ]
    digests = [r["result_digest"] for r in results]
    assert digests[0] != digests[1]  # v2 makes another run
    db = str(tmp_path / "coinbt.db")
    code, out, err = await anyio.to_thread.run_sync(
        cli, capsys, "audit", "rerun", "--all", "--db", db, "--json"
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert (report["checked"], report["mismatches"]) == (2, 0)
    assert {r["task_id"]: r["rerun"] for r in report["results"]} == {
        first.task_id: digests[0],
        later.task_id: digests[1],
    }
