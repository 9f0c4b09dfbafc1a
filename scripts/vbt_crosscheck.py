#!/usr/bin/env python
"""Cross-check coinbt's shorts, stops and sizing against vectorbt, case by case.

vectorbt is not a coinbt dependency: it runs in its own virtualenv, given with ``--vectorbt
PYTHON`` (``python -m venv /tmp/vbt && /tmp/vbt/bin/pip install vectorbt==1.2.0``). Each case is
one dataset, sma_cross signals and one combination of direction x stop loss (fixed or trailing)
x take profit x sizing x fill mode. vectorbt gets the call of DESIGN.md section 5b:

    Portfolio.from_signals(close, entries=E, exits=X, direction=..., price=open|close,
        open=, high=, low=, size=inf|X, size_type=..., fees=, slippage=, accumulate=False,
        sl_stop=, tp_stop=, sl_trail=, stop_entry_price='fillprice', stop_exit_price='stoplimit',
        adjust_sl_func_nb=..., adjust_tp_func_nb=...)

(E, X shifted one bar later for fill=next_open; short: entries=X, exits=E). The two hooks apply
the deliberate deviations: D1 (next_open: a bar whose signal moves the position checks no stop;
plain vectorbt checks stops first, which with price=open looks ahead) and D2 (an open at or
through the take profit fills there even if the bar's low also reaches the stop loss; plain
vectorbt tests the intrabar stop loss first).

A case agrees when both produce the same fills: bar and side equal, quantity, price and fee
within 1e-9 relative. target_percent is coinbt's own rule and is not compared.

    python scripts/vbt_crosscheck.py --vectorbt /tmp/vbt/bin/python           # the table
    python scripts/vbt_crosscheck.py --vectorbt /tmp/vbt/bin/python --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from coinbt import engine

RTOL = 1e-9

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from numba import njit
    import vectorbt as vbt

    @njit
    def adjust_sl(c, long_out, short_out, open_, tp_stop, d1):
        stop = c.curr_stop
        if np.isnan(stop) or c.position_now == 0:
            return stop, c.curr_trail
        i = c.i
        if d1 and ((c.position_now > 0 and long_out[i]) or (c.position_now < 0 and short_out[i])):
            return np.nan, c.curr_trail  # D1: the signal fills at this open; no stop
        if not np.isnan(tp_stop):
            o = open_[i]
            if c.position_now > 0:
                if o > c.curr_price * (1 - stop) and o >= c.init_price * (1 + tp_stop):
                    return np.nan, c.curr_trail  # D2: take profit at the open comes first
            else:
                if o < c.curr_price * (1 + stop) and o <= c.init_price * (1 - tp_stop):
                    return np.nan, c.curr_trail
        return stop, c.curr_trail

    @njit
    def adjust_tp(c, long_out, short_out, d1):
        stop = c.curr_stop
        if np.isnan(stop) or c.position_now == 0:
            return stop
        i = c.i
        if d1 and ((c.position_now > 0 and long_out[i]) or (c.position_now < 0 and short_out[i])):
            return np.nan
        return stop

    data = np.load(sys.argv[1])
    cases = json.loads(open(sys.argv[2]).read())
    out = {}
    for k, case in enumerate(cases):
        d = case["data"]
        o, h, l, c = (data[f"{d}_{x}"] for x in ("open", "high", "low", "close"))
        e, x = data[f"{d}_entries"], data[f"{d}_exits"]
        n = len(c)
        next_open = case["fill"] == "next_open"
        if next_open:
            e = np.concatenate(([False], e[:-1]))
            x = np.concatenate(([False], x[:-1]))
        direction = case["direction"]
        if direction == "long":
            ent, ext, vdir = e, x, "longonly"
            long_out, short_out = x & ~e, np.zeros(n, np.bool_)
        elif direction == "short":
            ent, ext, vdir = x, e, "shortonly"
            long_out, short_out = np.zeros(n, np.bool_), e & ~x
        else:
            ent, ext, vdir = e, x, "both"
            long_out, short_out = x & ~e, e & ~x
        sl = np.nan if case["sl_stop"] is None else case["sl_stop"]
        tp = np.nan if case["tp_stop"] is None else case["tp_stop"]
        kw = {}
        if case["size_type"] == "all":
            kw["size"] = np.inf
        else:
            kw["size"] = case["size"]
            kw["size_type"] = case["size_type"]
        pf = vbt.Portfolio.from_signals(
            c, entries=ent, exits=ext, direction=vdir,
            price=o if next_open else c, open=o, high=h, low=l,
            fees=case["fee"], slippage=case["slip"], init_cash=case["cash"],
            accumulate=False, sl_stop=sl, tp_stop=tp, sl_trail=case["sl_trail"],
            stop_entry_price="fillprice", stop_exit_price="stoplimit",
            adjust_sl_func_nb=adjust_sl,
            adjust_sl_args=(long_out, short_out, o, tp, next_open),
            adjust_tp_func_nb=adjust_tp,
            adjust_tp_args=(long_out, short_out, next_open),
            freq="1min", **kw,
        )
        r = pf.orders.values
        out[f"{k}_bar"] = r["idx"].astype(np.int64)
        out[f"{k}_side"] = np.where(r["side"] == 0, 1, -1).astype(np.int8)
        out[f"{k}_qty"] = r["size"]
        out[f"{k}_price"] = r["price"]
        out[f"{k}_fee"] = r["fees"]
    np.savez(sys.argv[3], **out)
    """
)


def _walk(n: int, seed: int) -> engine.Bars:
    """A random walk with 1-2 % bars and gaps at the open, so stops fire often."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.008, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.008, n)))
    ts = 1_704_067_200_000 + 60_000 * np.arange(n)
    return engine.Bars(ts, open_, high, low, close, np.ones(n))


DATASETS = {
    "walk-1": lambda: _walk(3_000, 1),
    "walk-2": lambda: _walk(3_000, 2),
    "walk-3": lambda: _walk(3_000, 3),
    "synthetic-1h": lambda: engine.synthetic(3_000, seed=5, interval="1h"),
}
PARAMS = {"fast": 5, "slow": 20}


def cases(quick: bool) -> list[dict[str, Any]]:
    stops = [(None, False), (0.01, False), (0.01, True), (0.03, False), (0.03, True)]
    takes = [None, 0.02, 0.05]
    sizes = [("all", None), ("value", 3_000.0), ("amount", 7.0), ("percent", 0.5)]
    out = []
    for data, fill, direction, (sl, trail), tp, (size_type, size) in itertools.product(
        DATASETS, ("next_open", "close"), ("long", "short", "both"), stops, takes, sizes
    ):
        if size_type == "percent" and direction == "both":
            continue
        if quick and (tp == 0.05 or sl == 0.03 or data != "walk-1"):
            continue
        out.append(
            {
                "data": data,
                "fill": fill,
                "direction": direction,
                "sl_stop": sl,
                "sl_trail": trail,
                "tp_stop": tp,
                "size_type": size_type,
                "size": size,
                "fee": 0.001,
                "slip": 0.0005,
                "cash": 10_000.0,
            }
        )
    return out


def ours(case: dict[str, Any], bars: engine.Bars) -> engine.BacktestResult:
    spec = engine.BacktestSpec(
        "sma_cross",
        PARAMS,
        cash=case["cash"],
        fee_bps=case["fee"] * 10_000,
        slippage_bps=case["slip"] * 10_000,
        fill=case["fill"],
        direction=case["direction"],
        sl_stop=case["sl_stop"],
        tp_stop=case["tp_stop"],
        sl_trail=case["sl_trail"],
        size=case["size"],
        size_type=case["size_type"],
    )
    return engine.run(spec, bars)


def compare(result: engine.BacktestResult, theirs: dict[str, np.ndarray]) -> str | None:
    """None when the fills agree, else what differs first."""
    f = result.fills
    if len(f) != len(theirs["bar"]):
        first = next(
            (i for i, (a, b) in enumerate(zip(f.bar, theirs["bar"], strict=False)) if a != b),
            min(len(f), len(theirs["bar"])),
        )
        return f"{len(f)} fills vs {len(theirs['bar'])} (first difference at fill {first})"
    if not np.array_equal(f.bar, theirs["bar"]) or not np.array_equal(f.side, theirs["side"]):
        i = int(np.flatnonzero((f.bar != theirs["bar"]) | (f.side != theirs["side"]))[0])
        mine, other = (f.bar[i], f.side[i]), (theirs["bar"][i], theirs["side"][i])
        return f"fill {i}: bar/side {mine} vs {other}"
    for name in ("qty", "price", "fee"):
        a, b = getattr(f, name), theirs[name]
        scale = np.maximum(np.abs(b), 1e-12)
        worst = float(np.max(np.abs(a - b) / scale)) if len(a) else 0.0
        if worst > RTOL:
            return f"{name} differs by {worst:.2e} relative"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectorbt", metavar="PYTHON", required=True)
    parser.add_argument("--quick", action="store_true", help="one dataset, fewer options")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    todo = cases(args.quick)
    bars = {name: make() for name, make in DATASETS.items()}
    arrays: dict[str, np.ndarray] = {}
    for name, b in bars.items():
        entries, exits = engine.STRATEGIES["sma_cross"].signals(b, PARAMS)
        for col in ("open", "high", "low", "close"):
            arrays[f"{name}_{col}"] = getattr(b, col)
        arrays[f"{name}_entries"], arrays[f"{name}_exits"] = entries, exits
    with tempfile.TemporaryDirectory() as tmp:
        data, spec, out = Path(tmp, "data.npz"), Path(tmp, "cases.json"), Path(tmp, "out.npz")
        np.savez(data, **arrays)
        spec.write_text(json.dumps(todo))
        code = Path(tmp, "child.py")
        code.write_text(CHILD)
        subprocess.run([args.vectorbt, str(code), str(data), str(spec), str(out)], check=True)
        theirs = dict(np.load(out))
    rows = []
    for k, case in enumerate(todo):
        result = ours(case, bars[case["data"]])
        got = {n: theirs[f"{k}_{n}"] for n in ("bar", "side", "qty", "price", "fee")}
        diff = compare(result, got)
        reasons = np.bincount(result.fills.reason, minlength=4).tolist()
        rows.append({**case, "fills": len(result.fills), "reasons": reasons, "difference": diff})
    agreed = sum(r["difference"] is None for r in rows)
    if args.json:
        print(json.dumps({"cases": len(rows), "agreed": agreed, "rows": rows}))
    else:
        for r in rows:
            trail = " trail" if r["sl_trail"] else ""
            what = (
                f"{r['data']:<13} {r['fill']:<9} {r['direction']:<5} sl={r['sl_stop']}{trail} "
                f"tp={r['tp_stop']} {r['size_type']}={r['size']}"
            )
            print(
                f"{what:<72} {r['fills']:>5} fills {r['reasons']}  "
                f"{'agrees' if r['difference'] is None else r['difference']}"
            )
        print(f"\n{agreed} of {len(rows)} cases agree ({len(DATASETS)} datasets)")
    return 0 if agreed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
