"""``/sweeps``: sweeps and walk-forwards as tasks, through the real system and HTTP."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from coinbt import engine
from coinbt.events import Queued
from coinbt.lifecycle import UNFINISHED
from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, wait_status

DATA = {"synthetic": {"bars": 20_000, "seed": 1, "interval": "1h"}}
GRID = {"fast": [5, 10, 20], "slow": {"start": 30, "stop": 90, "step": 30}}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def sweep_body(**overrides: Any) -> dict[str, Any]:
    return {"strategy": "sma_cross", "data": DATA, "grid": GRID, "fee_bps": 5, **overrides}


def long_sweep(**overrides: Any) -> dict[str, Any]:
    """A sweep that runs for many seconds: only ever cancelled, timed out or crashed."""
    return sweep_body(
        data={"synthetic": {"bars": 3_000_000, "seed": 1}},
        grid={"fast": list(range(2, 40)), "slow": list(range(50, 60))},
        **overrides,
    )


@pytest.mark.parametrize("kind", ["asgi", "uvicorn"])
async def test_a_sweep_runs_as_a_task_and_equals_engine_sweep(
    open_system: OpenSystem, kind: str
) -> None:
    async with open_system(workers=2) as system, http_client(kind, system) as http:
        response = await http.post("/sweeps", json=sweep_body())
        assert response.status_code == 202, response.text
        task = response.json()
        assert task["status"] in UNFINISHED
        assert task["kind"] == "grid"
        task_id = task["task_id"]
        # Queued records the whole sweep spec.
        [queued] = [e for e in await system.store.read_stream(task_id) if e.type == "Queued"]
        assert isinstance(queued.event, Queued)
        assert queued.event.spec.sweep is not None
        assert queued.event.spec.sweep.grid["fast"] == [5, 10, 20]
        await system.drain()

        done = (await http.get(f"/sweeps/{task_id}")).json()
        assert done["status"] == "completed", done
        expected = engine.sweep(
            "sma_cross",
            {"fast": [5, 10, 20], "slow": [30, 60, 90]},
            engine.synthetic(20_000, seed=1, interval="1h"),
            fee_bps=5,
        )
        summary = done["sweep"]
        assert summary["evaluated"] == expected.evaluated == 9
        assert summary["best"] == [dict(row) for row in expected.rows]
        dsr = summary["deflated_sharpe"]
        assert 0.0 <= dsr["probability"] <= 1.0
        assert dsr["trials"] == 9
        assert done["result"]["metrics"]["deflated_sharpe"] == dsr["probability"]
        assert done["result"]["metrics"]["sharpe"] == expected.rows[0]["sharpe"]

        # Rows: sorted pages with a cursor, by any column, either order.
        first = (await http.get(f"/sweeps/{task_id}/rows?sort=total_return&limit=4")).json()
        second = (
            await http.get(
                f"/sweeps/{task_id}/rows?sort=total_return&limit=4&cursor={first['next_cursor']}"
            )
        ).json()
        returns = [r["total_return"] for r in first["rows"] + second["rows"]]
        assert returns == sorted((r["total_return"] for r in expected.rows), reverse=True)[:8]
        assert first["total"] == 9
        ascending = (await http.get(f"/sweeps/{task_id}/rows?sort=fast&order=asc")).json()
        assert [r["fast"] for r in ascending["rows"]] == sorted(r["fast"] for r in expected.rows)
        assert isinstance(ascending["rows"][0]["fast"], int)

        # The full table as CSV.
        table = await http.get(f"/sweeps/{task_id}/table")
        assert table.status_code == 200
        assert table.headers["content-type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(table.text)))
        assert len(parsed) == 9
        assert float(parsed[0]["sharpe"]) == pytest.approx(expected.rows[0]["sharpe"])
        parquet = await http.get(f"/sweeps/{task_id}/table?format=parquet")
        assert parquet.status_code == 200
        import pyarrow.parquet as pq

        frame = pq.read_table(io.BytesIO(parquet.content))
        assert frame.num_rows == 9
        assert frame.column("sharpe").to_pylist()[0] == pytest.approx(expected.rows[0]["sharpe"])
        assert (await http.get(f"/sweeps/{task_id}/table?format=xls")).status_code == 400

        # Listed under /sweeps; a backtest is not.
        backtest = await http.post(
            "/backtests",
            json={"strategy": "sma_cross", "data": {"synthetic": {"bars": 300}}},
        )
        listed = (await http.get("/sweeps")).json()["sweeps"]
        assert [s["task_id"] for s in listed] == [task_id]
        assert (await http.get(f"/sweeps/{backtest.json()['task_id']}")).status_code == 404


async def test_a_walk_forward_reports_folds_stitched_equity_and_degradation(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        body = sweep_body(walk_forward={"train": "180d", "test": "60d", "anchored": False})
        response = await http.post("/sweeps", json=body)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        assert response.json()["kind"] == "walk_forward"
        await system.drain()
        done = (await http.get(f"/sweeps/{task_id}")).json()
        assert done["status"] == "completed", done
        expected = engine.walk_forward(
            "sma_cross",
            {"fast": [5, 10, 20], "slow": [30, 60, 90]},
            engine.synthetic(20_000, seed=1, interval="1h"),
            train="180d",
            test="60d",
            fee_bps=5,
        )
        wf = done["sweep"]["walk_forward"]
        assert wf["folds"] == [f.to_dict() for f in expected.folds]
        assert wf["metrics"] == expected.metrics
        assert wf["degradation"] == expected.degradation
        assert done["result"]["metrics"]["folds"] == len(expected.folds)
        # The stitched out-of-sample equity reads like a backtest's curve.
        curve = (await http.get(f"/backtests/{task_id}/equity?points=0")).json()
        assert curve["total_points"] == len(expected.equity)
        rows = (await http.get(f"/sweeps/{task_id}/rows?sort=fold&order=asc")).json()["rows"]
        assert [r["fold"] for r in rows] == list(range(len(expected.folds)))
        assert rows[0]["fast"] == expected.folds[0].params["fast"]


async def test_sweep_cancel_contract(open_system: OpenSystem) -> None:
    """As for backtests: queued 200, running 200, completed 400, failed 400, cancelled 200
    unchanged, unknown 404; every read agrees."""
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        done = (await http.post("/sweeps", json=sweep_body())).json()["task_id"]
        failed = (await http.post("/sweeps", json=long_sweep(timeout_s=0.2))).json()["task_id"]
        await system.drain()
        assert (await http.get(f"/sweeps/{failed}")).json()["error_type"] == "timeout"
        for task_id, status in ((done, "completed"), (failed, "failed")):
            response = await http.delete(f"/sweeps/{task_id}")
            assert response.status_code == 400
            assert response.json()["error"]["details"]["status"] == status

        running = (await http.post("/sweeps", json=long_sweep())).json()["task_id"]
        queued = (await http.post("/sweeps", json=sweep_body())).json()["task_id"]
        await wait_status(system, running, "running")
        for task_id in (queued, running):
            before = await system.store.last_position()
            response = await http.delete(f"/sweeps/{task_id}?reason=enough")
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == "cancelled"
            assert body["reason"] == "enough"
            assert (await http.get(f"/sweeps/{task_id}")).json() == body
            events = (await http.get(f"/backtests/{task_id}/events")).json()["events"]
            assert events[-1]["type"] == "Cancelled"
            again = await http.delete(f"/sweeps/{task_id}")
            assert again.status_code == 200
            assert again.json() == body
            assert await system.store.last_position() == before + 1
        assert (await http.delete("/sweeps/no-such-task")).status_code == 404
        await system.drain()
        # The cancelled run's chunk processes were stopped: the executor runs nothing.
        assert system.executor is not None
        assert system.executor.running_pids() == {}
        assert (await http.get(f"/sweeps/{queued}")).json()["started_at"] is None
        rows = await http.get(f"/sweeps/{running}/rows")
        assert rows.status_code == 400
        assert rows.json()["error"]["code"] == "not_completed"


BAD_SWEEPS = [
    pytest.param({"grid": {}}, "grid", id="empty-grid"),
    pytest.param({"grid": {"fast": []}}, "grid.fast", id="empty-axis"),
    pytest.param(
        {"grid": {"fast": {"start": 5, "stop": 50, "step": 0}}}, "grid.fast.step", id="step-0"
    ),
    pytest.param(
        {"grid": {"fast": {"start": 50, "stop": 5, "step": 5}}}, "grid.fast.step", id="wrong-sign"
    ),
    pytest.param({"grid": {"fsat": [5, 10]}}, "grid.fsat", id="unknown-param"),
    pytest.param({"grid": {"fast": ["x"]}}, "grid.fast[0]", id="bad-value"),
    pytest.param({"grid": {"fast": {"start": 1, "stop": 5}}}, "grid.fast.step", id="range-no-step"),
    pytest.param(
        {"grid": {"fast": list(range(1, 401)), "slow": list(range(2, 402))}},
        "grid",
        id="too-many-combinations",
    ),
    pytest.param({"grid": {"fast": [30], "slow": [10]}}, "grid", id="no-valid-combination"),
    pytest.param({"sort_by": "luck"}, "sort_by", id="unknown-sort"),
    pytest.param(
        {"walk_forward": {"train": "2000d", "test": "30d"}}, "walk_forward.train", id="wf-too-long"
    ),
    pytest.param(
        {"walk_forward": {"train": "12h", "test": "30d"}}, "walk_forward.train", id="wf-few-bars"
    ),
    pytest.param(
        {"walk_forward": {"train": "180d", "test": "soon"}}, "walk_forward.test", id="wf-bad-test"
    ),
    pytest.param({"walk_forward": {"train": "180d"}}, "walk_forward.test", id="wf-missing-test"),
    pytest.param({"grid": None}, "grid", id="grid-null"),
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    pytest.param(
        {"direction": "short", "walk_forward": {"train": "180d", "test": "60d"}},
        "direction",
        id="wf-trading-option",
    ),
    pytest.param(
        {"grid": {"fast": [5], "sl_stop": [0.1]}, "walk_forward": {"train": "180d", "test": "60d"}},
        "grid.sl_stop",
        id="wf-trading-grid",
    ),
    pytest.param({"grid": {"fast": [5], "sl_stop": [1.5]}}, "grid.sl_stop", id="bad-stop"),
    pytest.param({"data": {"synthetic": {"bars": 5000, "symbols": 2}}}, "data", id="portfolio"),
    pytest.param({"strategy": "nope"}, "strategy", id="unknown-strategy"),
    pytest.param({"data": {"synthetic": {"bars": 1}}}, "data.synthetic.bars", id="bad-data"),
    pytest.param(
        {
            "strategy": "rules",
            "rules": {"entry": "close > n", "exit": "close < n"},
            "grid": {"n": []},
        },
        "grid.n",
        id="rules-empty-axis",
    ),
    pytest.param(
        {"grid": {"fast": {"start": -1.7e308, "stop": 1.7e308, "step": 5e-324}}},
        "grid.fast",
        id="range-count-overflows",
    ),
    pytest.param(  # the grid overrides it, but Queued records it: in range like any parameter
        {"params": {"slow": 1_000_001}, "grid": {"fast": [5], "slow": [30]}},
        "params.slow",
        id="overridden-param-out-of-range",
    ),
]


@pytest.mark.parametrize(("changes", "field"), BAD_SWEEPS)
async def test_bad_sweeps_are_422_naming_the_field_and_append_nothing(
    open_system: OpenSystem, changes: dict[str, Any], field: str
) -> None:
    body = sweep_body(**changes)
    if changes.get("grid", 1) is None:
        del body["grid"]
    async with (
        open_system(workers=0, max_combinations=100_000) as system,
        http_client("asgi", system) as http,
    ):
        response = await http.post("/sweeps", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_spec"
        assert field in [d["field"] for d in error["details"]], error
        assert "Traceback" not in response.text
        assert await system.store.last_position() == 0


async def test_the_combination_limit_is_configurable(open_system: OpenSystem) -> None:
    async with (
        open_system(workers=0, max_combinations=8) as system,
        http_client("asgi", system) as http,
    ):
        response = await http.post("/sweeps", json=sweep_body())  # 9 combinations
        assert response.status_code == 422
        assert "at most 8" in response.text
        assert (
            await http.post("/sweeps", json=sweep_body(grid={"fast": [5, 10]}))
        ).status_code == 202


async def test_malformed_and_misplaced_sweeps(open_system: OpenSystem) -> None:
    json_type = {"Content-Type": "application/json"}
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        assert (await http.post("/sweeps", content=b"{", headers=json_type)).status_code == 400
        assert (await http.post("/sweeps", content=b"[1]", headers=json_type)).status_code == 422
        # A sweep spec is not a backtest: POST /backtests refuses one.
        spec = {"strategy": "sma_cross", "data": DATA, "sweep": {"grid": {"fast": [5]}}}
        response = await http.post("/backtests", json=spec)
        assert response.status_code == 422
        assert "sweep" in [d["field"] for d in response.json()["error"]["details"]]
        assert (await http.get("/sweeps/x/rows?cursor=zz")).status_code == 404
        assert await system.store.last_position() == 0


async def test_a_rules_strategy_is_swept_over_its_parameters(open_system: OpenSystem) -> None:
    from coinbt.engine.rules import rules_strategy

    rules = {
        "entry": "cross_above(sma(close, fast), sma(close, slow))",
        "exit": "cross_below(sma(close, fast), sma(close, slow))",
    }
    async with open_system(workers=2) as system, http_client("asgi", system) as http:
        body = sweep_body(strategy="rules", rules=rules, grid={"fast": [5, 10], "slow": [30, 60]})
        response = await http.post("/sweeps", json=body)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        await system.drain()
        done = (await http.get(f"/sweeps/{task_id}")).json()
        assert done["status"] == "completed", done
        expected = engine.sweep(
            rules_strategy(rules, {"fast": 5, "slow": 30}),
            {"fast": [5, 10], "slow": [30, 60]},
            engine.synthetic(20_000, seed=1, interval="1h"),
            fee_bps=5,
        )
        assert done["sweep"]["best"] == [dict(row) for row in expected.rows]
        # The same rows as sma_cross: the rules use the engine's exact indicators.
        plain = engine.sweep(
            "sma_cross",
            {"fast": [5, 10], "slow": [30, 60]},
            engine.synthetic(20_000, seed=1, interval="1h"),
            fee_bps=5,
        )
        assert [r["sharpe"] for r in done["sweep"]["best"]] == [r["sharpe"] for r in plain.rows]
        before = await system.store.last_position()
        bad = sweep_body(strategy="rules", rules=rules, grid={"fast": [5], "slwo": [30]})
        response = await http.post("/sweeps", json=bad)
        assert response.status_code == 422
        assert await system.store.last_position() == before


async def test_trading_options_and_stops_are_swept_like_engine_sweep(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=2) as system, http_client("asgi", system) as http:
        body = sweep_body(
            direction="both",
            grid={"fast": [5, 10], "slow": [30, 60], "sl_stop": [0.02, 0.05], "tp_stop": [0.1]},
        )
        response = await http.post("/sweeps", json=body)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        await system.drain()
        done = (await http.get(f"/sweeps/{task_id}")).json()
        assert done["status"] == "completed", done
        expected = engine.sweep(
            "sma_cross",
            {"fast": [5, 10], "slow": [30, 60], "sl_stop": [0.02, 0.05], "tp_stop": [0.1]},
            engine.synthetic(20_000, seed=1, interval="1h"),
            fee_bps=5,
            direction="both",
        )
        assert done["sweep"]["evaluated"] == expected.evaluated == 8
        assert done["sweep"]["best"] == [dict(row) for row in expected.rows]
        assert done["sweep"]["params"] == list(expected.param_names)
        assert 0.0 <= done["sweep"]["deflated_sharpe"]["probability"] <= 1.0
