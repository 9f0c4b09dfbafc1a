"""run(): the result object, its JSON shape and digest, progress and cancellation."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from coinbt.engine import BacktestSpec, Fill, run, synthetic
from coinbt.errors import RunCancelledError

SPEC = BacktestSpec("sma_cross", {"fast": 10, "slow": 30})
BARS = synthetic(20_000, seed=3)


def test_the_result_holds_fills_equity_and_metrics() -> None:
    result = run(SPEC, BARS)
    assert len(result.equity) == len(BARS)
    assert result.equity.dtype == np.float64
    assert result.final_equity == result.equity[-1] == result.metrics["final_equity"]
    assert result.total_return == pytest.approx(result.final_equity / 10_000 - 1)
    assert result.num_fills == len(result.fills) > 0
    assert result.last_close == BARS.close[-1]
    first = result.fills[0]
    assert isinstance(first, Fill)
    assert first.side == "buy"
    assert first.ts == BARS.ts[first.bar]
    assert next(iter(result.fills)) == first
    assert result.fills.to_dicts()[0] == first.to_dict()
    with pytest.raises(ValueError, match="read-only"):
        result.equity[0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPEC.cash = 1.0  # type: ignore[misc]


def test_to_dict_is_the_documented_json_shape() -> None:
    out = run(SPEC, BARS).to_dict()
    for key in (
        "final_equity",
        "total_return",
        "max_drawdown",
        "num_fills",
        "num_trades",
        "total_fees",
        "metrics",
        "fills",
    ):
        assert key in out
    assert set(out["fills"][0]) == {"bar", "ts", "side", "qty", "price", "fee", "reason"}
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert "fills" not in run(SPEC, BARS).to_dict(include_fills=False)


def test_the_digest_is_stable_and_sensitive() -> None:
    a, b = run(SPEC, BARS), run(SPEC, BARS)
    assert a.digest() == b.digest()
    assert len(a.digest()) == 64
    assert run(BacktestSpec("sma_cross", {"fast": 10, "slow": 31}), BARS).digest() != a.digest()
    assert (
        run(BacktestSpec("sma_cross", {"fast": 10, "slow": 30}, fee_bps=10.5), BARS).digest()
        != a.digest()
    )


def test_a_short_run_reports_progress_once() -> None:
    seen: list[float] = []
    run(SPEC, BARS, progress=seen.append)
    assert seen == [1.0]


def test_a_long_run_reports_progress_often_and_in_order() -> None:
    bars = synthetic(1_000_000, seed=1)
    seen: list[float] = []
    run(SPEC, bars, progress=seen.append)
    assert len(seen) >= 10
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert 0.0 < seen[0] < 1.0


def test_a_progress_callback_can_cancel_the_run() -> None:
    bars = synthetic(300_000, seed=1)
    calls: list[float] = []

    def cancel(fraction: float) -> None:
        calls.append(fraction)
        if fraction > 0.5:
            raise RunCancelledError("cancelled by the user")

    with pytest.raises(RunCancelledError, match="cancelled by the user"):
        run(SPEC, bars, progress=cancel)
    assert calls[-1] < 1.0  # it stopped before the end

    with pytest.raises(RunCancelledError):
        run(SPEC, BARS, progress=cancel)  # a short run checks once, at the end
