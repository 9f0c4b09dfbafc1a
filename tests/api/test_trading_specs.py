"""Directions, stops, sizing and portfolios over HTTP: bad input is a 422 naming the field with
nothing appended; good specs run through the worker with their options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, tiny

GOOD: dict[str, Any] = msgspec.to_builtins(tiny())
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def csv_of(times: list[int], price: float) -> bytes:
    rows = [
        f"{1_704_067_200_000 + 60_000 * t},{price},{price + 1},{price - 1},{price},5" for t in times
    ]
    return ("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n").encode()


BAD = [
    pytest.param({"direction": "sideways"}, "direction", id="direction"),
    pytest.param({"sl_stop": 1.0}, "sl_stop", id="sl-stop-100pct"),
    pytest.param({"tp_stop": 0}, "tp_stop", id="tp-stop-zero"),
    pytest.param({"tp_stop": 1.5, "direction": "both"}, "tp_stop", id="tp-stop-both"),
    pytest.param({"sl_trail": True}, "sl_trail", id="trail-without-stop"),
    pytest.param({"size": 0}, "size", id="size-zero"),
    pytest.param({"size": 5}, "size", id="size-with-all"),
    pytest.param({"size_type": "value"}, "size", id="value-without-size"),
    pytest.param({"size_type": "lots"}, "size_type", id="size-type"),
    pytest.param(
        {"size_type": "percent", "size": 0.5, "direction": "both"}, "size_type", id="percent-both"
    ),
    pytest.param(
        {"data": {"synthetic": {"bars": 300, "symbols": 2}}}, "size_type", id="all-two-assets"
    ),
    pytest.param(
        {"data": {"datasets": ["AAA", "NOPE"]}, "size_type": "value", "size": 100},
        "data.datasets[1]",
        id="unknown-dataset",
    ),
    pytest.param(
        {"data": {"datasets": ["AAA", "GAPPY"]}, "size_type": "value", "size": 100},
        "data.datasets[1]",
        id="misaligned",
    ),
    pytest.param(
        {"data": {"datasets": ["AAA"], "dataset": "AAA"}}, "data", id="dataset-and-datasets"
    ),
    pytest.param(
        {"data": {"dataset": "AAA", "versions": [1]}}, "data.versions", id="versions-of-one"
    ),
    pytest.param(
        {"data": {"datasets": ["AAA", "GAPPY"], "versions": [1]}},
        "data.versions",
        id="versions-too-few",
    ),
    pytest.param(
        {"data": {"datasets": ["AAA", "GAPPY"], "versions": [1, 2]}},
        "data.versions[1]",
        id="unknown-version",
    ),
    pytest.param(
        {"data": {"datasets": ["AAA"], "versions": [0]}}, "data.versions[0]", id="version-0"
    ),
]


@pytest.mark.parametrize(("changes", "field"), BAD)
async def test_a_bad_trading_spec_is_a_422_naming_the_field(
    open_system: OpenSystem, changes: dict[str, Any], field: str
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        for name, times in (("AAA", list(range(60))), ("GAPPY", [*range(30), *range(31, 60)])):
            made = await http.post(
                f"/datasets?name={name}", content=csv_of(times, 50.0), headers=CSV
            )
            assert made.status_code == 201, made.text
        before = await system.store.last_position()
        response = await http.post("/backtests", json={**GOOD, **changes})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert field in [d["field"] for d in error["details"]], error
        if field == "data.datasets[1]" and "GAPPY" in str(changes):
            assert "00:30:00" in error["message"]
        assert await system.store.last_position() == before


async def test_a_short_with_a_trailing_stop_and_a_portfolio_run_in_the_service(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as system, http_client("asgi", system) as http:
        short = {**GOOD, "direction": "short", "sl_stop": 0.002, "sl_trail": True}
        short["data"] = {"synthetic": {"bars": 3000, "seed": 2}}
        pair = {**GOOD, "size_type": "target_percent", "size": 0.4, "direction": "both"}
        pair["data"] = {"synthetic": {"bars": 3000, "seed": 2, "symbols": 2}}
        ids = []
        for spec in (short, pair):
            response = await http.post("/backtests", json=spec)
            assert response.status_code == 202, response.text
            ids.append(response.json()["task_id"])
        await system.drain()
        from coinbt import engine

        bars = engine.synthetic(3000, seed=2)
        expected = [
            engine.run(
                engine.BacktestSpec(
                    "sma_cross",
                    {"fast": 5, "slow": 20},
                    direction="short",
                    sl_stop=0.002,
                    sl_trail=True,
                ),
                bars,
            ),
            engine.run(
                engine.BacktestSpec(
                    "sma_cross",
                    {"fast": 5, "slow": 20},
                    direction="both",
                    size=0.4,
                    size_type="target_percent",
                ),
                engine.synthetic_portfolio(3000, 2, seed=2),
            ),
        ]
        for task_id, want in zip(ids, expected, strict=True):
            task = (await http.get(f"/backtests/{task_id}")).json()
            assert task["status"] == "completed", task
            assert task["spec"]["direction"] in ("short", "both")
            assert task["result"]["metrics"]["final_equity"] == want.final_equity
            assert task["result"]["metrics"]["num_trades"] == want.num_trades
        from coinbt.engine.result import REASONS

        assert REASONS.index("trailing_stop") in expected[0].fills.reason.tolist()
        assert expected[1].symbols == ("SYNTH1", "SYNTH2")
