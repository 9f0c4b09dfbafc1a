"""``coinbt sweep --walk-forward``, ``coinbt sweep --submit [--wait]`` and ``coinbt sweeps``."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from coinbt.cli import main
from tests.api.helpers import server_url
from tests.system import system_factory

SWEEP = ["sweep", "--synthetic", "6000:2", "--interval", "1h", "--strategy", "sma_cross"]
GRID = ["-g", "fast=5,10", "-g", "slow=30:60:30"]


async def run_cli(argv: list[str]) -> int:
    return await anyio.to_thread.run_sync(main, argv)


def test_a_local_walk_forward(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, *GRID, "--walk-forward", "60d:20d", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["folds"]) == 9
    assert out["train"] == "60d"
    assert set(out["degradation"]) >= {"in_sample_sharpe", "out_of_sample_sharpe"}
    assert main([*SWEEP, *GRID, "--walk-forward", "60d:20d", "--anchored"]) == 0
    text = capsys.readouterr().out
    assert "(anchored): 9 folds" in text
    assert "walk-forward efficiency" in text


async def test_submit_wait_list_status_cancel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with system_factory(tmp_path)(workers=1) as system, server_url(system) as url:
        status = await run_cli([*SWEEP, *GRID, "--submit", "--wait", "--url", url, "--json"])
        assert status == 0
        sweep = json.loads(capsys.readouterr().out)
        assert sweep["status"] == "completed"
        assert sweep["sweep"]["evaluated"] == 4
        task_id = sweep["task_id"]

        assert await run_cli([*SWEEP, *GRID, "--submit", "--wait", "--url", url]) == 0
        text = capsys.readouterr().out
        assert "4 combinations evaluated" in text
        assert "deflated Sharpe ratio of the best row" in text

        wf = [*SWEEP, *GRID, "--walk-forward", "60d:20d", "--submit", "--url", url, "--json"]
        assert await run_cli(wf) == 0
        queued = json.loads(capsys.readouterr().out)
        await system.drain()

        assert await run_cli(["sweeps", "list", "--url", url, "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["sweeps"]
        assert len(listed) == 3
        assert listed[0]["task_id"] == queued["task_id"]
        assert await run_cli(["sweeps", "status", queued["task_id"], "--url", url]) == 0
        assert "9 folds" in capsys.readouterr().out
        assert await run_cli(["sweeps", "cancel", task_id, "--url", url]) == 2
        err = capsys.readouterr().err
        assert err.startswith("coinbt: error: ")
        assert "completed" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([*SWEEP, *GRID, "--wait"], "--wait: needs --submit", id="wait-alone"),
        pytest.param([*SWEEP, *GRID, "--anchored"], "--anchored", id="anchored-alone"),
        pytest.param([*SWEEP, *GRID, "--walk-forward", "60d"], "--walk-forward", id="wf-one-part"),
        pytest.param(
            [*SWEEP, *GRID, "--walk-forward", "9000d:20d"], "walk_forward.train", id="wf-long"
        ),
        pytest.param([*SWEEP, "-g", "fast=5:50:0"], "grid.fast", id="step-0"),
    ],
)
def test_bad_sweep_input_exits_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("coinbt: error: ")
    assert expected in err
    assert "Traceback" not in err


async def test_a_bad_submitted_sweep_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with system_factory(tmp_path)(workers=0) as system, server_url(system) as url:
        argv = [*SWEEP, "-g", "fsat=5,10", "--submit", "--url", url]
        assert await run_cli(argv) == 2
        assert "grid.fsat" in capsys.readouterr().err
        wf = [*SWEEP, *GRID, "--walk-forward", "1h:20d", "--submit", "--url", url]
        assert await run_cli(wf) == 2
        assert "walk_forward.train" in capsys.readouterr().err
        assert await system.store.last_position() == 0
