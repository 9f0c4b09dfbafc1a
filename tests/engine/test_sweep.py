"""Sweeps: every row equals the single run, skips are counted, rows are ranked."""

from __future__ import annotations

from typing import Any

import pytest

from coinbt.engine import BacktestSpec, run, sweep, synthetic
from coinbt.errors import SpecError

BARS = synthetic(5_000, seed=21)
COSTS = {"cash": 5_000.0, "fee_bps": 7.5, "slippage_bps": 2.0, "fill": "close"}


@pytest.mark.parametrize(
    ("name", "grid"),
    [
        pytest.param("sma_cross", {"fast": [5, 10, 20], "slow": [10, 30, 60]}, id="sma"),
        pytest.param("ema_cross", {"fast": [3, 12], "slow": [26, 50]}, id="ema"),
        pytest.param("rsi_reversion", {"period": [7, 14], "lower": [25, 30.5]}, id="rsi"),
        pytest.param("bollinger_breakout", {"window": [10, 20], "k": [1, 2.5]}, id="bollinger"),
        pytest.param(
            "donchian_breakout", {"window": [10, 20], "exit_window": [5, 30]}, id="donchian"
        ),
    ],
)
def test_every_row_equals_the_single_run(name: str, grid: dict[str, list[Any]]) -> None:
    result = sweep(name, grid, BARS, **COSTS)  # type: ignore[arg-type]
    assert len(result) == result.evaluated
    for row in result.to_dicts():
        params = {k: row[k] for k in result.param_names}
        single = run(BacktestSpec(name, params, **COSTS), BARS)  # type: ignore[arg-type]
        assert {k: row[k] for k in result.metric_names} == single.metrics


def test_invalid_combinations_are_skipped_and_counted() -> None:
    result = sweep("sma_cross", {"fast": [5, 10, 30, 50], "slow": [20, 40]}, BARS)
    assert result.evaluated == 5  # fast < slow: (5,20) (10,20) (5,40) (10,40) (30,40)
    assert result.skipped == 3
    assert result.skip_reasons == {"params.fast: must be less than slow": 3}
    assert {(r["fast"], r["slow"]) for r in result.rows} == {
        (5, 20),
        (10, 20),
        (5, 40),
        (10, 40),
        (30, 40),
    }


def test_windows_longer_than_the_data_are_skipped() -> None:
    result = sweep("sma_cross", {"slow": [50, 100, 6_000]}, BARS)
    assert result.evaluated == 2
    assert result.skip_reasons == {"params.slow: needs at least 6001 bars": 1}


def test_rows_are_sorted_with_undefined_values_last() -> None:
    result = sweep("sma_cross", {"fast": [2, 5, 8], "slow": [10, 20]}, BARS, sort_by="total_return")
    values = [row["total_return"] for row in result.rows]
    assert values == sorted(values, reverse=True)
    ascending = sweep(
        "sma_cross", {"fast": [2, 5, 8], "slow": [10, 20]}, BARS, sort_by="fast", descending=False
    )
    assert [row["fast"] for row in ascending.rows] == [2, 2, 5, 5, 8, 8]  # ties keep grid order
    short = synthetic(40, seed=1)
    mixed = sweep("sma_cross", {"fast": [1, 2], "slow": [3, 38]}, short, sort_by="win_rate")
    rates = [row["win_rate"] for row in mixed.rows]
    assert None in rates
    assert rates.index(None) == len([r for r in rates if r is not None])  # None rows come last


def test_parameters_not_in_the_grid_keep_their_defaults() -> None:
    result = sweep("rsi_reversion", {"lower": [20, 25]}, BARS)
    assert {(r["period"], r["upper"]) for r in result.rows} == {(14, 70.0)}


def test_progress_is_reported_per_combination() -> None:
    seen: list[float] = []
    sweep("sma_cross", {"fast": [2, 3], "slow": [4, 5]}, BARS, progress=seen.append)
    assert seen == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        pytest.param({"strategy": "nope"}, "strategy", "unknown strategy", id="unknown-strategy"),
        pytest.param(
            {"grid": {"period": [1]}}, "grid.period", "unknown parameter", id="unknown-param"
        ),
        pytest.param({"grid": {"fast": []}}, "grid.fast", "non-empty list", id="empty-list"),
        pytest.param(
            {"grid": {"fast": "5,10"}}, "grid.fast", "non-empty list", id="string-not-list"
        ),
        pytest.param(
            {"grid": {"fast": [5, "x"]}}, "grid.fast[1]", "must be an integer", id="bad-value"
        ),
        pytest.param({"grid": {"fast": [5, 0]}}, "grid.fast[1]", "must be in", id="out-of-range"),
        pytest.param(
            {"grid": {"fast": [50], "slow": [20]}},
            "grid",
            "no valid parameter combination",
            id="nothing-valid",
        ),
        pytest.param(
            {"sort_by": "wins"}, "sort_by", "unknown metric or parameter 'wins'", id="bad-sort"
        ),
        pytest.param({"fee_bps": -1}, "fee_bps", "must not be negative", id="bad-fee"),
    ],
)
def test_bad_sweeps_name_the_field(kwargs: dict[str, Any], field: str, message: str) -> None:
    args: dict[str, Any] = {"strategy": "sma_cross", "grid": {"fast": [5]}, **kwargs}
    with pytest.raises(SpecError, match=message) as info:
        sweep(args.pop("strategy"), args.pop("grid"), BARS, **args)
    assert info.value.errors[0].field == field


def test_the_to_dict_shape() -> None:
    out = sweep("sma_cross", {"fast": [5, 10]}, BARS).to_dict(top=1)
    assert out["params"] == ["fast", "slow"]
    assert out["evaluated"] == 2
    assert out["skipped"] == 0
    assert len(out["rows"]) == 1
    assert out["sort_by"] == "sharpe"
    assert out["descending"] is True
