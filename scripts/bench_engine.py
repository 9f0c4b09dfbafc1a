#!/usr/bin/env python
"""Benchmark the backtest engine: a table for people, ``--json`` for programs.

Workloads (synthetic 1-minute bars, seed 1; sma_cross 10/30, 10 bps fees, fill at the next open):
one backtest on 100k and on 1M bars (median of several runs after a warm-up); the first backtest in
a new process (interpreter start, imports, 1M synthetic bars and the run); the 90-pair sweep (fast
5..50 step 5 x slow 20..200 step 20, fast < slow) on 100k bars; peak memory (max RSS of a fresh
process) of the 1M run and of the sweep; a tiny 300-bar backtest; loading a 1M-row CSV.

    python scripts/bench_engine.py                       # the table
    python scripts/bench_engine.py --json                # one JSON object
    python scripts/bench_engine.py --vectorbt /tmp/vbt/bin/python   # side by side with vectorbt

``--vectorbt PYTHON`` runs the same workloads with vectorbt in that interpreter (its own virtualenv:
vectorbt is not a coinbt dependency) on the same bars, and checks that both produce the same
fills for sma_cross on 100k bars. Numbers are measurements of this machine, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Shared by the coinbt and vectorbt children: build bars, time a callable.
PRELUDE = textwrap.dedent(
    """
    import json, resource, statistics, time

    def timed(fn, repeat, warmup=1):
        for _ in range(warmup):
            fn()
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return {"median_s": statistics.median(runs), "min_s": min(runs), "runs": len(runs)}

    def peak_mb():
        # VmHWM, this process's peak resident memory. (ru_maxrss would include the parent's:
        # a child started with vfork shares the parent's memory until it execs.)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    """
)

FIRST_RUN = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import coinbt.engine as e
    t1 = time.perf_counter()
    bars = e.synthetic(1_000_000, seed=1)
    t2 = time.perf_counter()
    result = e.run(e.BacktestSpec("sma_cross", {"fast": 10, "slow": 30}), bars)
    t3 = time.perf_counter()
    import json
    print(json.dumps({"import_s": t1 - t0, "data_s": t2 - t1, "run_s": t3 - t2,
                      "in_process_s": t3 - t0, "fills": result.num_fills}))
    """
)

FIRST_STOPS = FIRST_RUN.replace(
    '{"fast": 10, "slow": 30})', '{"fast": 10, "slow": 30}, sl_stop=0.02, tp_stop=0.04)'
)

PEAK_RUN = PRELUDE + textwrap.dedent(
    """
    import coinbt.engine as e
    bars = e.synthetic(1_000_000, seed=1)
    before = peak_mb()
    e.run(e.BacktestSpec("sma_cross", {"fast": 10, "slow": 30}), bars)
    print(json.dumps({"peak_mb": peak_mb(), "before_mb": before}))
    """
)

PEAK_SWEEP = PRELUDE + textwrap.dedent(
    """
    import coinbt.engine as e
    bars = e.synthetic(100_000, seed=1)
    before = peak_mb()
    grid = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}
    result = e.sweep("sma_cross", grid, bars)
    assert result.evaluated == 90, result.evaluated
    print(json.dumps({"peak_mb": peak_mb(), "before_mb": before}))
    """
)

VECTORBT = PRELUDE + textwrap.dedent(
    """
    import sys
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    import vectorbt as vbt
    import_s = time.perf_counter() - t0
    from coinbt.engine import synthetic  # the same bars (coinbt.engine needs only numpy)

    def frames(n):
        bars = synthetic(n, seed=1)
        return pd.Series(bars.close), pd.Series(bars.open)

    def backtest(close, open_, fast=10, slow=30):
        f = vbt.MA.run(close, fast, short_name="fast")
        s = vbt.MA.run(close, slow, short_name="slow")
        entries, exits = f.ma_crossed_above(s), f.ma_crossed_below(s)
        # a signal at bar t fills at bar t+1's open, as coinbt's fill="next_open"
        pf = vbt.Portfolio.from_signals(
            close, entries.shift(1, fill_value=False), exits.shift(1, fill_value=False),
            price=open_, fees=0.001, init_cash=10_000.0, freq="1min",
        )
        pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()
        return pf

    mode = sys.argv[1]
    out = {"import_s": import_s}
    if mode == "first":
        close, open_ = frames(1_000_000)
        t = time.perf_counter()
        backtest(close, open_)
        out["run_s"] = time.perf_counter() - t
        out["in_process_s"] = time.perf_counter() - t0
    elif mode == "timings":
        c100, o100 = frames(100_000)
        c1m, o1m = frames(1_000_000)
        out["run_100k"] = timed(lambda: backtest(c100, o100), 5)
        out["run_1m"] = timed(lambda: backtest(c1m, o1m), 5)
        c300, o300 = frames(300)
        out["tiny_300"] = timed(lambda: backtest(c300, o300), 20)
        pf = backtest(c100, o100)
        orders = pf.orders.records
        out["fills_100k"] = {
            "bar": orders["idx"].tolist(), "side": orders["side"].tolist(),
            "qty": orders["size"].tolist(), "price": orders["price"].tolist(),
            "fee": orders["fees"].tolist(),
        }
    elif mode == "trading":
        c1m, o1m = frames(1_000_000)
        b1m = synthetic(1_000_000, seed=1)
        h1m, l1m = pd.Series(b1m.high), pd.Series(b1m.low)

        def stops(**kw):
            f = vbt.MA.run(c1m, 10, short_name="fast")
            s = vbt.MA.run(c1m, 30, short_name="slow")
            entries, exits = f.ma_crossed_above(s), f.ma_crossed_below(s)
            pf = vbt.Portfolio.from_signals(
                c1m, entries.shift(1, fill_value=False), exits.shift(1, fill_value=False),
                price=o1m, open=o1m, high=h1m, low=l1m, fees=0.001, init_cash=10_000.0,
                freq="1min", stop_entry_price="fillprice", stop_exit_price="stoplimit", **kw,
            )
            pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()

        out["stops_1m"] = timed(lambda: stops(sl_stop=0.02, tp_stop=0.04), 3)
        out["both_1m"] = timed(lambda: stops(sl_stop=0.02, tp_stop=0.04, direction="both"), 3)
        out["trail_1m"] = timed(lambda: stops(sl_stop=0.03, sl_trail=True), 3)
        assets = [synthetic(100_000, seed=1 + i) for i in range(10)]
        close = pd.DataFrame({i: b.close for i, b in enumerate(assets)})
        open_ = pd.DataFrame({i: b.open for i, b in enumerate(assets)})

        def portfolio():
            f = vbt.MA.run(close, 10, short_name="fast")
            s = vbt.MA.run(close, 30, short_name="slow")
            entries, exits = f.ma_crossed_above(s), f.ma_crossed_below(s)
            pf = vbt.Portfolio.from_signals(
                close, entries.shift(1, fill_value=False), exits.shift(1, fill_value=False),
                price=open_, fees=0.001, init_cash=10_000.0, freq="1min", size=0.1,
                size_type="percent", group_by=True, cash_sharing=True,  # no targetpercent here
            )
            pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()

        out["portfolio_10x100k"] = timed(portfolio, 3)
    elif mode == "sweep":
        close, open_ = frames(100_000)
        pairs = [(f, s) for f in range(5, 51, 5) for s in range(20, 201, 20) if f < s]
        fast = [p[0] for p in pairs]
        slow = [p[1] for p in pairs]
        before = peak_mb()
        out["sweep_90"] = timed(lambda: backtest(close, open_, fast, slow), 2)
        out["peak_mb"] = peak_mb()
        out["before_mb"] = before
    print(json.dumps(out))
    """
)

SPEC_ARGS = {"fast": 10, "slow": 30}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _child(python: str, code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, env=_env(), check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "runs": len(runs)}


def _first_run(python: str, code: str, repeat: int, *args: str) -> dict[str, Any]:
    """Wall time of a fresh interpreter doing the whole job, median of ``repeat`` processes."""
    walls, inner = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        out = _child(python, code, *args)
        walls.append(time.perf_counter() - t)
        inner.append(out)
    best = inner[walls.index(statistics.median_low(walls))]
    return {"wall_s": statistics.median(walls), "walls_s": walls, **best}


def _csv_file(directory: str, rows: int, iso: bool) -> Path:
    from coinbt.engine import synthetic

    bars = synthetic(rows, seed=1)
    path = Path(directory) / f"bars-{'iso' if iso else 'ms'}.csv"
    import numpy as np

    if iso:
        stamps = np.char.add(np.datetime_as_string(bars.ts.astype("datetime64[ms]"), unit="s"), "Z")
    else:
        stamps = bars.ts.astype(str)
    columns = [np.char.mod("%.2f", a) for a in (bars.open, bars.high, bars.low, bars.close)]
    # round-tripped prices must still be valid bars: recompute high/low from the rounded values
    o, h, lo, c = (a.astype(float) for a in columns)
    h = np.maximum(h, np.maximum(o, c))
    lo = np.minimum(lo, np.minimum(o, c))
    columns = [np.char.mod("%.2f", a) for a in (o, h, lo, c)]
    volume = np.char.mod("%.4f", bars.volume)
    lines = stamps
    for col in (*columns, volume):
        lines = np.char.add(np.char.add(lines, ","), col)
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(lines.tolist()) + "\n")
    return path


def bench_coinbt(quick: bool) -> dict[str, Any]:
    from coinbt import engine

    spec = engine.BacktestSpec("sma_cross", SPEC_ARGS)
    out: dict[str, Any] = {}
    bars_100k = engine.synthetic(100_000, seed=1)
    bars_1m = engine.synthetic(1_000_000, seed=1)
    bars_300 = engine.synthetic(300, seed=1)
    out["synthetic_1m"] = _timed(lambda: engine.synthetic(1_000_000, seed=1), 3)
    out["run_100k"] = _timed(lambda: engine.run(spec, bars_100k), 5 if quick else 15)
    out["run_1m"] = _timed(lambda: engine.run(spec, bars_1m), 3 if quick else 7)
    grid = {"fast": list(range(5, 51, 5)), "slow": list(range(20, 201, 20))}
    out["sweep_90"] = _timed(lambda: engine.sweep("sma_cross", grid, bars_100k), 1 if quick else 3)

    def tiny_batch() -> None:
        for _ in range(1_000):
            engine.run(spec, bars_300)

    batch = _timed(tiny_batch, 3 if quick else 7)
    out["tiny_300"] = {k: v / 1_000 if k.endswith("_s") else v for k, v in batch.items()}
    out["first_run_1m"] = _first_run(sys.executable, FIRST_RUN, 3 if quick else 5)
    out["peak_run_1m"] = _child(sys.executable, PEAK_RUN)
    out["peak_sweep_90"] = _child(sys.executable, PEAK_SWEEP)
    with tempfile.TemporaryDirectory() as tmp:
        for iso in (True, False):
            path = _csv_file(tmp, 1_000_000, iso)
            key = "csv_1m_iso" if iso else "csv_1m_epoch_ms"
            out[key] = _timed(lambda p=path: engine.load_csv(p), 1 if quick else 3)
            out[key]["mb"] = path.stat().st_size / 1e6
    out["fills_100k"] = engine.run(spec, bars_100k).fills
    out.update(bench_trading(quick))
    out["first_stops_1m"] = _first_run(sys.executable, FIRST_STOPS, 3 if quick else 5)
    return out


def bench_trading(quick: bool) -> dict[str, Any]:
    """The workloads of shorts, stops and portfolios (DESIGN.md section 5b)."""
    from coinbt import engine

    bars = engine.synthetic(1_000_000, seed=1)
    repeat = 3 if quick else 7
    out: dict[str, Any] = {}
    for key, options in (
        ("stops_1m", {"sl_stop": 0.02, "tp_stop": 0.04}),
        ("both_1m", {"sl_stop": 0.02, "tp_stop": 0.04, "direction": "both"}),
        ("trail_1m", {"sl_stop": 0.03, "sl_trail": True}),
    ):
        spec = engine.BacktestSpec("sma_cross", SPEC_ARGS, **options)
        out[key] = _timed(lambda s=spec: engine.run(s, bars), repeat)
    assets = engine.synthetic_portfolio(100_000, 10, seed=1)
    spec = engine.BacktestSpec("sma_cross", SPEC_ARGS, size=0.1, size_type="target_percent")
    out["portfolio_10x100k"] = _timed(lambda: engine.run(spec, assets), repeat)
    return out


def bench_vectorbt(python: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out.update(_child(python, VECTORBT, "timings"))
    first = _first_run(python, VECTORBT, 2, "first")  # the numba cache is warm after the first
    out["first_run_1m"] = first
    out.update({"sweep": _child(python, VECTORBT, "sweep")})
    out.update({"trading": _child(python, VECTORBT, "trading")})
    return out


def compare_fills(ours: Any, theirs: dict[str, list[float]]) -> dict[str, Any]:
    sides = ["buy" if s > 0 else "sell" for s in ours.side.tolist()]
    their_sides = ["buy" if s == 0 else "sell" for s in theirs["side"]]
    same_shape = ours.bar.tolist() == theirs["bar"] and sides == their_sides

    def worst(a: list[float], b: list[float]) -> float:
        return max((abs(x - y) / abs(y) for x, y in zip(a, b, strict=True)), default=0.0)

    report: dict[str, Any] = {"fills": len(ours), "vectorbt_fills": len(theirs["bar"])}
    report["same_bars_and_sides"] = same_shape
    if same_shape:
        report["max_rel_diff_qty"] = worst(ours.qty.tolist(), theirs["qty"])
        report["max_rel_diff_price"] = worst(ours.price.tolist(), theirs["price"])
        report["max_rel_diff_fee"] = worst(ours.fee.tolist(), theirs["fee"])
    return report


ROWS = [
    ("1M-bar backtest (warm, median)", "run_1m", "median_s"),
    ("100k-bar backtest (warm, median)", "run_100k", "median_s"),
    ("first 1M-bar backtest, new process (wall)", "first_run_1m", "wall_s"),
    ("  of which imports", "first_run_1m", "import_s"),
    ("90-pair sweep, 100k bars (median)", "sweep_90", "median_s"),
    ("300-bar backtest (mean of 1000)", "tiny_300", "median_s"),
    ("1M bars, sl_stop 2 % + tp_stop 4 % (median)", "stops_1m", "median_s"),
    ("  the same, direction both (median)", "both_1m", "median_s"),
    ("1M bars, trailing stop 3 % (median)", "trail_1m", "median_s"),
    ("10 assets x 100k bars, target_percent 0.1", "portfolio_10x100k", "median_s"),
    ("first 1M-bar run with stops, new process", "first_stops_1m", "wall_s"),
    ("peak RSS, 1M-bar backtest process", "peak_run_1m", "peak_mb"),
    ("peak RSS, 90-pair sweep process", "peak_sweep_90", "peak_mb"),
    ("load 1M-row CSV, ISO timestamps", "csv_1m_iso", "median_s"),
    ("load 1M-row CSV, epoch ms", "csv_1m_epoch_ms", "median_s"),
    ("synthetic 1M bars", "synthetic_1m", "median_s"),
]


def _show(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    if key.endswith("mb"):
        return f"{value:,.0f} MB"
    if value < 1e-3:
        return f"{value * 1e6:,.0f} us"
    if value < 1:
        return f"{value * 1e3:,.1f} ms"
    return f"{value:,.2f} s"


def table(ours: dict[str, Any], theirs: dict[str, Any] | None) -> str:
    vbt_keys = {
        "run_1m": ("run_1m", "median_s"),
        "run_100k": ("run_100k", "median_s"),
        "tiny_300": ("tiny_300", "median_s"),
        "first_run_1m": ("first_run_1m", None),
        "sweep_90": ("sweep", "sweep_90"),
        "peak_sweep_90": ("sweep", "peak_mb"),
        "stops_1m": ("trading", "stops_1m"),
        "both_1m": ("trading", "both_1m"),
        "trail_1m": ("trading", "trail_1m"),
        "portfolio_10x100k": ("trading", "portfolio_10x100k"),
    }
    header = ["workload", "coinbt"] + (["vectorbt", "ratio"] if theirs else [])
    rows = []
    for label, key, field in ROWS:
        mine = ours[key].get(field)
        row = [label, _show(mine, field)]
        if theirs is not None:
            other = None
            if key in vbt_keys:
                vkey, vfield = vbt_keys[key]
                part = theirs.get(vkey, {})
                if vfield is None:
                    other = part.get(field)
                elif isinstance(part.get(vfield), dict):
                    other = part[vfield]["median_s"]
                else:
                    other = part.get(vfield)
            row += [_show(other, field), f"{other / mine:,.1f}x" if other and mine else "-"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--vectorbt", metavar="PYTHON", help="interpreter with vectorbt installed")
    args = parser.parse_args()
    ours = bench_coinbt(args.quick)
    fills = ours.pop("fills_100k")
    theirs = None
    if args.vectorbt:
        theirs = bench_vectorbt(args.vectorbt)
        theirs["fill_check"] = compare_fills(fills, theirs.pop("fills_100k"))
    if args.json:
        print(json.dumps({"coinbt": ours, "vectorbt": theirs, "python": sys.version.split()[0]}))
        return 0
    print(table(ours, theirs))
    first = ours["first_run_1m"]
    print(
        f"\nfirst run in a new process: {first['wall_s']:.2f} s wall = interpreter start + "
        f"imports {first['import_s']:.2f} s + 1M synthetic bars {first['data_s']:.2f} s + "
        f"backtest {first['run_s']:.2f} s"
    )
    if theirs is not None:
        check = theirs["fill_check"]
        print(f"vectorbt import: {theirs['import_s']:.2f} s; fills on 100k bars: {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
