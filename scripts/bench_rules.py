#!/usr/bin/env python
"""Benchmark rules (strategies as data): a table for people, ``--json`` for programs.

Workloads (synthetic 1-minute bars, seed 1, 10 bps fees, fill at the next open):

- ``sma_cross`` 10/30 as a builtin and as the rule ``cross_above(sma(close, fast), sma(close,
  slow))`` / ``cross_below(...)``: one whole backtest each on 1M bars (goal: rules <= 1.2x).
- A three-indicator rule (ema, rsi, atr) on 1M bars against the same rule written directly with
  TA-Lib and numpy: the signals only. Twice: with the engine's exact ``ema``/``rsi`` (what parity
  with the builtins needs) and with TA-Lib's ``ta_ema``/``ta_rsi`` (goal: <= 1.2x).
- Parsing and type-checking one rule (goal: < 1 ms), over a set of typical rules.
- 100-combination sweeps of two rules (fast 5..50 x slow 60..150: an sma cross, and an ema cross
  with an rsi filter) against the same 100 runs one by one: the sweep shares each indicator
  across combinations (the rsi is computed once, each ema window once).

The two sides of each comparison run interleaved, and the median of several runs is reported.

    python scripts/bench_rules.py            # the table
    python scripts/bench_rules.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from coinbt import engine
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.rules import compile_rule, rules_strategy

SMA = {
    "entry": "cross_above(sma(close, fast), sma(close, slow))",
    "exit": "cross_below(sma(close, fast), sma(close, slow))",
}
EXACT = {
    "entry": "ema(close, 20) > ema(close, 50) and rsi(close, 14) < 70 and atr(14) < 0.01 * close",
    "exit": "ema(close, 20) < ema(close, 50) or rsi(close, 14) > 80",
}
TALIB = {k: v.replace("ema(", "ta_ema(").replace("rsi(", "ta_rsi(") for k, v in EXACT.items()}
TYPICAL = [
    SMA["entry"],
    EXACT["entry"],
    "cross_above(macd(close), macd_signal(close)) and adx(14) > 25",
    "close > shift(highest(high, 20), 1) or (rsi(close, 14) < 30 and rising(obv(), 3))",
    "bb_lower(close, 20, 2) > close and stoch_k(14, 3) < 20 and volume > sma(volume, 50) * 1.5",
    "cross_below(kama(close, 30), sma(close, 50)) or pct_change(close, 5) < -0.03",
]


def interleaved(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, run alternately after one warm-up each."""
    a()
    b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def plain_talib(bars: engine.Bars) -> tuple[Any, Any]:
    import talib

    close, high, low = np.asarray(bars.close), np.asarray(bars.high), np.asarray(bars.low)
    fast, slow = talib.EMA(close, 20), talib.EMA(close, 50)
    rsi, atr = talib.RSI(close, 14), talib.ATR(high, low, close, 14)
    with np.errstate(invalid="ignore"):
        entries = (fast > slow) & (rsi < 70) & (atr < 0.01 * close)
        exits = (fast < slow) | (rsi > 80)
    return entries, exits


def signals_of(rules: dict[str, str], bars: engine.Bars) -> Callable[[], object]:
    strategy = rules_strategy(rules, {})
    return lambda: strategy.signal_fn(IndicatorCache.of(bars), {})


SWEPT = {
    "sma cross": SMA,
    "ema cross + rsi": {
        "entry": "cross_above(ema(close, fast), ema(close, slow)) and rsi(close, 14) < 70",
        "exit": "cross_below(ema(close, fast), ema(close, slow)) or rsi(close, 14) > 80",
    },
}
GRID = {"fast": list(range(5, 51, 5)), "slow": list(range(60, 151, 10))}


def sweep_vs_runs(rules: dict[str, str], bars: engine.Bars, rounds: int = 2) -> dict[str, Any]:
    """A 100-combination sweep of ``rules`` and the same 100 runs one by one, alternated
    ``rounds`` times (medians)."""
    strategy = rules_strategy(rules, {"fast": 10, "slow": 60})
    swept: list[float] = []
    separate: list[float] = []
    evaluated = 0
    for _ in range(rounds):
        start = time.perf_counter()
        evaluated = engine.sweep(strategy, GRID, bars).evaluated
        swept.append(time.perf_counter() - start)
        start = time.perf_counter()
        for fast in GRID["fast"]:
            for slow in GRID["slow"]:
                spec = engine.BacktestSpec("rules", {"fast": fast, "slow": slow}, rules=rules)
                engine.run(spec, bars)
        separate.append(time.perf_counter() - start)
    sweep_s, separate_s = statistics.median(swept), statistics.median(separate)
    return {
        "combinations": evaluated,
        "sweep_s": sweep_s,
        "separate_runs_s": separate_s,
        "speedup": separate_s / sweep_s,
    }


def measure(bars_n: int, sweep_bars_n: int, repeat: int) -> dict[str, Any]:
    bars = engine.synthetic(bars_n, seed=1)
    params = {"fast": 10, "slow": 30}
    builtin_s, rules_s = interleaved(
        lambda: engine.run(engine.BacktestSpec("sma_cross", params), bars),
        lambda: engine.run(engine.BacktestSpec("rules", params, rules=SMA), bars),
        repeat,
    )
    plain_s, exact_s = interleaved(lambda: plain_talib(bars), signals_of(EXACT, bars), repeat)
    plain2_s, talib_s = interleaved(lambda: plain_talib(bars), signals_of(TALIB, bars), repeat)
    parse: list[float] = []
    for _ in range(max(repeat, 5)):
        start = time.perf_counter()
        for text in TYPICAL:
            compile_rule(text, {"fast": 10, "slow": 30})
        parse.append((time.perf_counter() - start) / len(TYPICAL))
    sweep_bars = engine.synthetic(sweep_bars_n, seed=1)
    sweeps = {name: sweep_vs_runs(rules, sweep_bars) for name, rules in SWEPT.items()}
    return {
        "bars": bars_n,
        "sma_cross_builtin_s": builtin_s,
        "sma_cross_rules_s": rules_s,
        "sma_cross_ratio": rules_s / builtin_s,
        "three_indicators_talib_numpy_s": plain_s,
        "three_indicators_rules_exact_s": exact_s,
        "three_indicators_exact_ratio": exact_s / plain_s,
        "three_indicators_talib_numpy_again_s": plain2_s,
        "three_indicators_rules_talib_s": talib_s,
        "three_indicators_talib_ratio": talib_s / plain2_s,
        "parse_and_check_per_rule_ms": statistics.median(parse) * 1000,
        "sweep_bars": sweep_bars_n,
        "sweeps": sweeps,
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        ("sma_cross 10/30, one backtest", f"{r['bars']:,} bars", ""),
        ("  builtin", f"{r['sma_cross_builtin_s'] * 1000:,.1f} ms", ""),
        (
            "  rules",
            f"{r['sma_cross_rules_s'] * 1000:,.1f} ms",
            f"{r['sma_cross_ratio']:.2f}x (goal <= 1.2x)",
        ),
        ("ema+rsi+atr rule, signals", f"{r['bars']:,} bars", ""),
        ("  TA-Lib + numpy by hand", f"{r['three_indicators_talib_numpy_s'] * 1000:,.1f} ms", ""),
        (
            "  rules, engine's exact ema/rsi",
            f"{r['three_indicators_rules_exact_s'] * 1000:,.1f} ms",
            f"{r['three_indicators_exact_ratio']:.2f}x",
        ),
        (
            "  rules, ta_ema/ta_rsi (TA-Lib's)",
            f"{r['three_indicators_rules_talib_s'] * 1000:,.1f} ms",
            f"{r['three_indicators_talib_ratio']:.2f}x (goal <= 1.2x; by hand: "
            f"{r['three_indicators_talib_numpy_again_s'] * 1000:,.1f} ms)",
        ),
        (
            "parse + type-check, per rule",
            f"{r['parse_and_check_per_rule_ms']:.3f} ms",
            "goal < 1 ms",
        ),
    ]
    for name, sw in r["sweeps"].items():
        rows += [
            (
                f"{name} rule sweep, {sw['combinations']} combinations",
                f"{sw['sweep_s']:,.2f} s",
                f"{r['sweep_bars']:,} bars",
            ),
            (
                "  the same as separate runs",
                f"{sw['separate_runs_s']:,.2f} s",
                f"the sweep is {sw['speedup']:.1f}x faster",
            ),
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{a.ljust(widths[0])}  {b.rjust(widths[1])}  {c}".rstrip() for a, b, c in rows
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000, help="bars (1,000,000)")
    parser.add_argument(
        "--sweep-bars", type=int, default=200_000, help="bars of the sweep (200,000)"
    )
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.bars, args.sweep_bars, args.repeat)
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
