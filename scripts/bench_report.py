#!/usr/bin/env python
"""Benchmark the reports of one long run: the tear sheet and the exports, their size and time.

    .venv/bin/python scripts/bench_report.py              # a table, 1,000,000 bars
    .venv/bin/python scripts/bench_report.py --json       # one JSON object
    .venv/bin/python scripts/bench_report.py --bars 100000

The workload: sma_cross fast 10 / slow 40 on --bars synthetic 1m bars (seed 1). "run" is the
engine (for scale, not part of a report); "report" is ``result.report(path)``: benchmark, ledger,
monthly returns, rolling Sharpe, downsampled SVG charts, written to a file; "csv"/"parquet" are
the equity, fills and trades tables encoded as the server does for ``?format=``. Each figure is
the best of --repeat rounds; the load average is printed because a busy machine changes them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from coinbt import engine
from coinbt.engine.ledger import ledger_of
from coinbt.errors import MissingExtraError
from coinbt.report import tables


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bars = engine.synthetic(args.bars, seed=1)
    spec = engine.BacktestSpec("sma_cross", {"fast": 10, "slow": 40})
    run_s, result = best(lambda: engine.run(spec, bars), args.repeat)
    rows: list[dict[str, Any]] = [
        {"what": "run (engine)", "seconds": run_s, "bytes": None, "rows": len(bars)}
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        report_s, _ = best(lambda: result.report(path), args.repeat)
        rows.append(
            {"what": "report.html", "seconds": report_s, "bytes": path.stat().st_size, "rows": None}
        )
    trades = ledger_of(result).trades
    tabs = {
        "equity": tables.equity_table(bars.ts, result.equity),
        "fills": tables.fills_table(result.fills, result.symbols),
        "trades": tables.trades_table(trades, bars.ts, result.symbols),
    }
    counts = {"equity": len(bars), "fills": len(result.fills), "trades": len(trades)}
    for fmt in tables.FORMATS:
        for name, table in tabs.items():
            try:
                seconds, body = best(lambda t=table, f=fmt: tables.encode(t, f), args.repeat)
            except MissingExtraError:
                continue
            rows.append(
                {"what": f"{name}.{fmt}", "seconds": seconds, "bytes": len(body),
                 "rows": counts[name]}
            )  # fmt: skip
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"bars": args.bars, "load_1m": load, "results": rows}))
        return
    print(f"{args.bars:,} bars, {len(result.fills):,} fills, {len(trades):,} trades; "
          f"load average {load:.2f}; best of {args.repeat}")  # fmt: skip
    print(f"{'what':<16} {'seconds':>8} {'size':>12} {'rows':>10}")
    for row in rows:
        size = "" if row["bytes"] is None else f"{row['bytes'] / 1e6:,.2f} MB"
        count = "" if row["rows"] is None else f"{row['rows']:,}"
        print(f"{row['what']:<16} {row['seconds']:>8.3f} {size:>12} {count:>10}")


if __name__ == "__main__":
    main()
