"""A run's results are one artifact, ``result`` (an ``.npz`` of the equity, fills and trades
tables); a data directory written before that (three ``.npy`` artifacts per run, made by
tests/fixtures/make_three_artifacts.py) is still served, replayed and audited."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from coinbt.cli import main
from coinbt.clock import SequentialIds
from coinbt.engine.columns import EQUITY_DTYPE, FILL_DTYPE, TRADE_DTYPE
from coinbt.events import Completed
from coinbt.runtime import System
from tests.system import system_factory, tiny, types_of

FIXTURE = Path(__file__).parent / "fixtures" / "three_artifacts"
OLD = ("r1-000001", "r1-000002", "r1-000003")


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE / "artifacts", data / "artifacts")
    shutil.copy(FIXTURE / "coinbt.sqlite", data / "coinbt.db")
    return data


async def _results(system: System, task_id: str) -> tuple[object, ...]:
    fills = await system.fills(task_id, limit=10_000)
    trades = await system.trades(task_id, limit=None)
    ts, equity = await system.equity(task_id)
    return fills.total, fills.rows, trades.total, trades.rows, ts.tolist(), equity.tolist()


async def test_old_and_new_runs_of_the_same_specs_serve_the_same_results(
    old_data: Path,
) -> None:
    open_system = system_factory(old_data)
    async with open_system(workers=1, ids=SequentialIds("new")) as system:
        for task_id in OLD:
            view = await system.task(task_id)
            assert sorted(view.artifacts) == ["equity", "fills", "trades"]
            # The same spec run again today: one `result` artifact, the same tables.
            again = await system.submit(view.spec)
            await system.drain()
            rerun = await system.task(again.task_id)
            assert list(rerun.artifacts) == ["result"]
            assert rerun.artifacts["result"].key == f"tasks/{again.task_id}-1-result.npz"
            old, new = await _results(system, task_id), await _results(system, again.task_id)
            assert old == new
            assert old[0] > 0  # fills
            assert old[2] > 0  # trades
        portfolio = await system.fills(OLD[2], limit=10_000)
        assert {row["symbol"] for row in portfolio.rows} == {"SYNTH1", "SYNTH2"}


def test_an_old_data_directory_replays_and_audits(
    old_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(old_data / "coinbt.db")
    assert main(["replay", "--db", db, "--verify"]) == 0
    assert "read models match the log" in capsys.readouterr().out
    assert main(["audit", "verify", "--db", db, "--artifacts"]) == 0
    assert "ok: 9 artifacts match" in capsys.readouterr().out  # 3 runs x (equity, fills, trades)


async def test_a_run_records_one_npz_numpy_reads(tmp_path: Path) -> None:
    open_system = system_factory(tmp_path)
    async with open_system(workers=1) as system:
        view = await system.submit(tiny(seed=7))
        await system.drain()
        assert await types_of(system, view.task_id) == ["Queued", "Started", "Completed"]
        [stored] = (await system.store.read_stream(view.task_id))[-1:]
        completed = stored.event
        assert isinstance(completed, Completed)
        assert list(completed.artifacts) == ["result"]
        ref = completed.artifacts["result"]
        data = await system.artifact(ref)  # checked against the recorded sha256
        assert len(data) == ref.size
        [row] = await system.artifact_states(view.task_id)
        assert (row.name, row.state) == ("result", "stored")
        tables = np.load(io.BytesIO(data), allow_pickle=False)
        assert sorted(tables.files) == ["equity", "fills", "trades"]
        assert tables["equity"].dtype == EQUITY_DTYPE
        assert tables["fills"].dtype == FILL_DTYPE
        assert tables["trades"].dtype == TRADE_DTYPE
        assert len(tables["equity"]) == 300
        assert len(tables["fills"]) == completed.num_fills
        fills = await system.fills(view.task_id, limit=1000)
        assert [f["bar"] for f in fills.rows] == tables["fills"]["bar"].tolist()
        staged = [p for p in (system.config.data_path / "staging").iterdir() if p.is_file()]
        assert staged == []
