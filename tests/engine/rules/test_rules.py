"""Rule sets as strategies: parameters, sweeps, short signals, shared subexpressions."""

from __future__ import annotations

import numpy as np
import pytest

from coinbt.engine import BacktestSpec, run, sweep, synthetic, walk_forward
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.rules import _eval, rules_strategy
from coinbt.errors import SpecError

BARS = synthetic(5_000, seed=5)
RULES = {
    "entry": "cross_above(ema(close, fast), ema(close, slow)) and rsi(close, 14) < level",
    "exit": "cross_below(ema(close, fast), ema(close, slow)) or close < lowest(low, 20)",
}


def test_rule_params_are_swept_and_each_row_equals_the_single_run() -> None:
    strategy = rules_strategy(RULES, {"fast": 5, "slow": 20, "level": 70.0})
    result = sweep(strategy, {"fast": [3, 5, 8], "slow": [20, 40], "level": [60, 75.5]}, BARS)
    assert result.evaluated == 12
    for row in result.to_dicts():
        params = {k: row[k] for k in ("fast", "slow", "level")}
        single = run(BacktestSpec("rules", params, rules=RULES), BARS)
        assert {k: row[k] for k in result.metric_names} == single.metrics


def test_a_window_param_is_range_checked_in_a_sweep() -> None:
    strategy = rules_strategy(RULES, {"fast": 5, "slow": 20, "level": 70.0})
    with pytest.raises(SpecError) as e:
        sweep(strategy, {"fast": [0, 5]}, BARS)
    assert e.value.errors[0].field == "grid.fast[0]"
    with pytest.raises(SpecError) as e:
        sweep(strategy, {"fast": [2.5]}, BARS)
    assert "integer" in e.value.errors[0].message
    longer = sweep(strategy, {"slow": [20, 6_000]}, BARS)
    assert longer.skip_reasons == {"params.slow: needs at least 6000 bars": 1}


def test_short_rules_give_short_signals() -> None:
    strategy = rules_strategy(
        {
            **RULES,
            "short_entry": "close < bb_lower(close, 20, 2)",
            "short_exit": "close > sma(close, 20)",
        },
        {"fast": 5, "slow": 20, "level": 70.0},
    )
    signals = strategy.all_signals(IndicatorCache.of(BARS), strategy.defaults())
    assert signals.short_entries is not None
    assert signals.short_exits is not None
    assert signals.short_entries.dtype == np.bool_
    assert len(signals.short_entries) == len(BARS)
    mean, sd = IndicatorCache.of(BARS).bands(20)
    expected = np.asarray(BARS.close) < mean - 2.0 * sd
    np.testing.assert_array_equal(signals.short_entries, expected)
    plain = rules_strategy(RULES, {"fast": 5, "slow": 20, "level": 70.0})
    assert plain.all_signals(IndicatorCache.of(BARS), plain.defaults()).short_entries is None


def test_equal_subexpressions_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    original = _eval._Evaluator.call

    def counting(self: _eval._Evaluator, node: tuple[object, ...]) -> object:
        if node not in self.shared:
            calls.append(node)
        return original(self, node)

    monkeypatch.setattr(_eval._Evaluator, "call", counting)
    strategy = rules_strategy(RULES, {"fast": 5, "slow": 20, "level": 70.0})
    cache = IndicatorCache.of(BARS)
    strategy.signal_fn(cache, strategy.defaults())
    names = [c[1] for c in calls]
    assert names.count("ema") == 2  # ema(close, 5) and ema(close, 20), though each appears twice
    calls.clear()
    strategy.signal_fn(cache, {"fast": 5, "slow": 30, "level": 60.0})  # the next combination
    assert [c[1] for c in calls if c[1] == "ema"] == ["ema"]  # only ema(close, 30) is new


def test_constants_and_arithmetic() -> None:
    strategy = rules_strategy(
        {"entry": "true and not false", "exit": "(close - shift(close)) / close * 100 > k * 2"},
        {"k": 0.5},
    )
    signals = strategy.all_signals(IndicatorCache.of(BARS), strategy.defaults())
    assert signals.entries.all()
    close = np.asarray(BARS.close)
    expected = np.zeros(len(close), dtype=bool)
    expected[1:] = (close[1:] - close[:-1]) / close[1:] * 100 > 1.0
    np.testing.assert_array_equal(signals.exits, expected)


def test_a_rule_walks_forward_like_its_builtin_twin() -> None:
    bars = synthetic(6_000, seed=2, interval="1h")
    grid = {"fast": [5, 10, 20], "slow": [30, 60]}
    sma = {
        "entry": "cross_above(sma(close, fast), sma(close, slow))",
        "exit": "cross_below(sma(close, fast), sma(close, slow))",
    }
    builtin = walk_forward("sma_cross", grid, bars, train="60d", test="20d")
    rules = walk_forward(
        rules_strategy(sma, {"fast": 5, "slow": 30}), grid, bars, train="60d", test="20d"
    )
    assert [f.params for f in rules.folds] == [f.params for f in builtin.folds]
    np.testing.assert_array_equal(rules.equity, builtin.equity)


def test_short_rules_drive_a_short_run() -> None:
    """direction="short" trades the bearish signals; short rules that restate them give the same
    fills, and different short rules give different ones."""
    sma = {
        "entry": "cross_above(sma(close, 5), sma(close, 20))",
        "exit": "cross_below(sma(close, 5), sma(close, 20))",
    }
    plain = run(BacktestSpec("rules", rules=sma, direction="short"), BARS)
    restated = {**sma, "short_entry": sma["exit"], "short_exit": sma["entry"]}
    same = run(BacktestSpec("rules", rules=restated, direction="short"), BARS)
    assert len(plain.fills) > 4
    np.testing.assert_array_equal(plain.fills.bar, same.fills.bar)
    np.testing.assert_array_equal(plain.fills.qty, same.fills.qty)
    other = {
        **sma,
        "short_entry": "close < bb_lower(close, 20, 1)",
        "short_exit": "close > sma(close, 20)",
    }
    shorted = run(BacktestSpec("rules", rules=other, direction="short"), BARS)
    assert shorted.fills.bar.tolist() != plain.fills.bar.tolist()
