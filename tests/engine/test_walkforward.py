"""Walk-forward analysis: fold layout, best-on-train, out-of-sample runs, stitching, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from coinbt import engine
from coinbt.engine.walkforward import curve_metrics, fold_windows, parse_window
from coinbt.errors import SpecError
from tests.engine.test_overfit import GRID, trending_bars

DAY = 86_400_000


def test_fold_windows_rolling_and_anchored() -> None:
    ts = np.arange(100, dtype=np.int64) * DAY  # 100 daily bars
    rolling = fold_windows(ts, DAY, 30 * DAY, 10 * DAY, anchored=False)
    assert [(w.train_start, w.train_end, w.test_end) for w in rolling] == [
        (k * 10, 30 + k * 10, 40 + k * 10) for k in range(7)
    ]
    anchored = fold_windows(ts, DAY, 30 * DAY, 10 * DAY, anchored=True)
    assert [(w.train_start, w.train_end, w.test_end) for w in anchored] == [
        (0, 30 + k * 10, 40 + k * 10) for k in range(7)
    ]
    # A test window that would run past the data does not count.
    assert len(fold_windows(ts, DAY, 30 * DAY, 11 * DAY, anchored=False)) == 6
    assert fold_windows(ts, DAY, 95 * DAY, 10 * DAY, anchored=False) == []


def test_parse_window() -> None:
    assert parse_window("180d", "f") == 180 * DAY
    assert parse_window("2w", "f") == 14 * DAY
    assert parse_window("12h", "f") == 12 * 3_600_000
    assert parse_window("400d", "f") == 400 * DAY  # longer than a bar may be
    for bad in ("0d", "abc", "-5d", "", 5, None, "1.5d"):
        with pytest.raises(SpecError) as info:
            parse_window(bad, "walk_forward.test")
        assert info.value.errors[0].field == "walk_forward.test"


def test_each_fold_picks_the_best_train_row_and_trades_the_next_window() -> None:
    bars = engine.synthetic(6_000, seed=2, interval="1h")
    grid = {"fast": [5, 10, 20], "slow": [30, 60]}
    result = engine.walk_forward("sma_cross", grid, bars, train="60d", test="20d", fee_bps=5)
    assert len(result.folds) == 9  # 250 days of bars: (250 - 60) // 20
    for fold in result.folds:
        w = fold.window
        train = bars.slice(int(bars.ts[w.train_start]), int(bars.ts[w.train_end]))
        table = engine.sweep("sma_cross", grid, train, fee_bps=5)
        assert fold.params == {k: table.rows[0][k] for k in ("fast", "slow")}
        assert fold.in_sample["sharpe"] == table.rows[0]["sharpe"]
        assert w.test_end - w.train_end == 20 * 24
    # Stitched: as long as the test windows together, each fold starting where the last ended.
    lengths = [f.window.test_end - f.window.train_end for f in result.folds]
    assert len(result.equity) == len(result.ts) == sum(lengths)
    assert result.ts[0] == bars.ts[result.folds[0].window.train_end]
    level, start = 10_000.0, 0
    for fold, n in zip(result.folds, lengths, strict=True):
        piece = result.equity[start : start + n]
        # Each out-of-sample run starts flat: its first bar's equity is the cash it began with.
        assert piece[0] == pytest.approx(level)
        ratio = piece[-1] / level
        assert fold.out_of_sample["total_return"] == pytest.approx(ratio - 1.0)
        level, start = piece[-1], start + n
    assert result.metrics == curve_metrics(result.equity, 10_000.0, bars.interval_ms)
    assert result.metrics["final_equity"] == pytest.approx(level)


def test_a_fold_never_sees_later_bars() -> None:
    bars = engine.synthetic(6_000, seed=4, interval="1h")
    grid = {"fast": [5, 10], "slow": [30, 60]}
    before = engine.walk_forward("sma_cross", grid, bars, train="60d", test="20d")
    cut = before.folds[2].window.test_end
    close = bars.close.copy()
    close[cut:] *= np.linspace(1.0, 3.0, len(close) - cut)  # rewrite the future
    changed = engine.Bars(
        bars.ts,
        bars.open,
        np.maximum(bars.high, close),
        np.minimum(bars.low, close),
        close,
        bars.volume,
    )
    after = engine.walk_forward("sma_cross", grid, changed, train="60d", test="20d")
    for k in range(3):
        assert after.folds[k].params == before.folds[k].params
        assert after.folds[k].out_of_sample == before.folds[k].out_of_sample


def test_anchored_train_windows_grow() -> None:
    bars = engine.synthetic(6_000, seed=2, interval="1h")
    result = engine.walk_forward(
        "sma_cross", {"fast": [5, 10], "slow": [30]}, bars, train="60d", test="20d", anchored=True
    )
    assert all(f.window.train_start == 0 for f in result.folds)
    sizes = [f.window.train_end for f in result.folds]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == len(sizes)


def test_degradation_on_noise_and_on_a_real_edge() -> None:
    noise = engine.walk_forward(
        "sma_cross", GRID, engine.synthetic(20_000, seed=3, interval="1h"), train="180d", test="30d"
    )
    d = noise.degradation
    assert d["in_sample_sharpe"] is not None
    assert d["out_of_sample_sharpe"] is not None
    assert d["in_sample_sharpe"] > 1.0  # the best of 90 on train always looks good
    assert d["out_of_sample_sharpe"] < d["in_sample_sharpe"] / 2  # and does not carry over
    edge = engine.walk_forward("sma_cross", GRID, trending_bars(), train="180d", test="30d")
    assert edge.degradation["sharpe_ratio"] is not None
    assert edge.degradation["sharpe_ratio"] > 0.5
    assert edge.metrics["sharpe"] is not None
    assert edge.metrics["sharpe"] > 5


@pytest.mark.parametrize(
    ("train", "test", "grid", "field", "message"),
    [
        pytest.param("400d", "30d", GRID, "walk_forward.train", "no whole", id="does-not-fit"),
        pytest.param("12h", "30d", GRID, "walk_forward.train", "needs at least", id="too-few-bars"),
        pytest.param("180d", "0d", GRID, "walk_forward.test", "duration", id="zero-test"),
        pytest.param("x", "30d", GRID, "walk_forward.train", "duration", id="not-a-duration"),
        pytest.param("180d", "30d", {"fast": []}, "grid.fast", "non-empty", id="empty-grid"),
        pytest.param("180d", "30d", {"fsat": [5]}, "grid.fsat", "unknown", id="unknown-param"),
    ],
)
def test_bad_walk_forward_input_names_the_field(
    train: str, test: str, grid: dict[str, list[int]], field: str, message: str
) -> None:
    bars = engine.synthetic(6_000, seed=1, interval="1h")  # 250 days
    with pytest.raises(SpecError) as info:
        engine.walk_forward("sma_cross", grid, bars, train=train, test=test)
    assert info.value.errors[0].field == field
    assert message in str(info.value)
