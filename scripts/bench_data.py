#!/usr/bin/env python
"""Benchmark market data: fetch + verify + import from a loopback Binance-like archive, against
pandas read_csv of the same files in the same run; resample; data info on a large dataset.

    .venv/bin/python scripts/bench_data.py            # a table
    .venv/bin/python scripts/bench_data.py --json     # one JSON object

Workloads (each timed with time.perf_counter, best of --repeat where repeated):
  fetch-cold      : coinbt data fetch binance BTCUSDT 1m --from 2023-01 --to 2023-12 from the
                    loopback archive (the tests' server: a thread of http.server): download 12
                    monthly zips (525,600 bars), check each sha256, parse, write the dataset
  fetch-cached    : the same into a new dataset from the download cache (verify + parse + import)
  pandas-read_csv : pandas.read_csv of the same 12 zips (parse only: no checksum, no dataset
                    written) and a concat; pandas is an optional extra (pip install pandas)
  resample        : 1,000,000 1m bars to 1h (coinbt.data.resample), per million bars
  info            : coinbt data info on a 10,000,000-bar dataset (load it, find the gaps)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coinbt import engine
from coinbt.cli import main as coinbt
from coinbt.data.resample import resample
from tests.data.archive import serve_archive


def _quiet(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = coinbt(argv)
    if status != 0:
        raise SystemExit(f"coinbt {' '.join(argv)} failed with {status}")


def measure_fetch(work: Path) -> dict[str, Any]:
    with serve_archive() as archive:
        bars = sum(len(archive.add_month("BTCUSDT", "1m", date(2023, m, 1))) for m in range(1, 13))
        zips = [p for p in archive.files if p.endswith(".zip")]
        size = sum(len(archive.files[p]) for p in zips)
        db = str(work / "coinbt.db")
        base = [
            "data",
            "fetch",
            "binance",
            "BTCUSDT",
            "1m",
            "--from",
            "2023-01",
            "--to",
            "2023-12",
            "--base-url",
            archive.url,
            "--db",
            db,
            "--create",
            "--today",
            "2024-06-01",
        ]
        start = time.perf_counter()
        _quiet(base)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        _quiet([*base, "--name", "again"])
        cached = time.perf_counter() - start
        local = sorted((work / "downloads" / "binance").rglob("*.zip"))
    out: dict[str, Any] = {
        "files": len(zips),
        "bars": bars,
        "zip_mb": round(size / 2**20, 1),
        "fetch_cold_s": round(cold, 3),
        "fetch_cached_s": round(cached, 3),
    }
    try:
        import pandas as pd
    except ImportError:
        out["pandas_read_csv_s"] = None
        return out
    names = [
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_time",
        "quote_volume",
        "trades",
        "taker_base",
        "taker_quote",
        "ignore",
    ]
    start = time.perf_counter()
    frames = [pd.read_csv(p, compression="zip", header=None, names=names) for p in local]
    frame = pd.concat(frames, ignore_index=True)
    parsed = time.perf_counter() - start
    assert len(frame) == bars, (len(frame), bars)
    out["pandas_read_csv_s"] = round(parsed, 3)
    return out


def measure_resample(bars_count: int, repeat: int) -> dict[str, Any]:
    bars = engine.synthetic(bars_count, seed=1, interval="1m")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        coarse = resample(bars, 3_600_000)
        best = min(best, time.perf_counter() - start)
    return {
        "bars": bars_count,
        "out_bars": len(coarse),
        "best_ms": round(best * 1000, 2),
        "ms_per_million": round(best * 1000 / (bars_count / 1e6), 2),
    }


def measure_info(work: Path, bars_count: int, repeat: int) -> dict[str, Any]:
    import anyio

    from coinbt.backends.sqlite.datasets import DatasetCatalog
    from coinbt.backends.sqlite.migrations import apply_migrations
    from coinbt.datasets import SourceFile

    db = work / "info.db"
    apply_migrations(db)
    bars = engine.synthetic(bars_count, seed=2, interval="1m")

    async def load() -> None:
        catalog = DatasetCatalog(db, work)
        await catalog.import_bars(
            "big-1m", [bars], source="synthetic", provenance=[SourceFile("synthetic", "-")]
        )

    start = time.perf_counter()
    anyio.run(load)
    imported = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        _quiet(["data", "info", "big-1m", "--db", str(db), "--json"])
        best = min(best, time.perf_counter() - start)
    return {"bars": bars_count, "import_bars_s": round(imported, 3), "info_best_s": round(best, 3)}


def table(result: dict[str, Any]) -> str:
    f = result["fetch"]
    rate = f["bars"] / f["fetch_cold_s"]
    lines = [
        f"coinbt {result['coinbt']}, numpy {result['numpy']}, pandas {result['pandas']}",
        "",
        f"{'workload':<44} {'seconds':>9} {'bars/s':>12}",
        f"{'fetch-cold (12 zips, ' + format(f['bars'], ',') + ' bars, download)':<44} "
        f"{f['fetch_cold_s']:>9.3f} {rate:>12,.0f}",
        f"{'fetch-cached (verify + parse + import)':<44} {f['fetch_cached_s']:>9.3f} "
        f"{f['bars'] / f['fetch_cached_s']:>12,.0f}",
    ]
    if f["pandas_read_csv_s"] is not None:
        lines.append(
            f"{'pandas read_csv of the same zips (parse only)':<44} {f['pandas_read_csv_s']:>9.3f} "
            f"{f['bars'] / f['pandas_read_csv_s']:>12,.0f}"
        )
        cold, cached = (f[k] / f["pandas_read_csv_s"] for k in ("fetch_cold_s", "fetch_cached_s"))
        lines.append(
            f"  same run: coinbt fetch-cold takes {cold:.2f}x pandas' time, fetch-cached "
            f"{cached:.2f}x"
        )
    r, i = result["resample"], result["info"]
    label = f"resample {r['bars']:,} 1m bars to 1h"
    lines += [
        f"{label:<44} {r['best_ms'] / 1000:>9.4f} "
        f"{r['bars'] / (r['best_ms'] / 1000):>12,.0f}   ({r['ms_per_million']} ms per million; "
        "goal < 100)",
        f"{'data info on ' + format(i['bars'], ',') + ' bars':<44} {i['info_best_s']:>9.3f} "
        f"{i['bars'] / i['info_best_s']:>12,.0f}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--info-bars", type=int, default=10_000_000, help="bars for info (10M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per repeated measurement (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    import numpy

    from coinbt import __version__

    try:
        import pandas

        pandas_version = pandas.__version__
    except ImportError:
        pandas_version = None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "coinbt": __version__,
            "numpy": numpy.__version__,
            "pandas": pandas_version,
            "fetch": measure_fetch(work / "fetch"),
            "resample": measure_resample(1_000_000, max(args.repeat, 5)),
            "info": measure_info(work, args.info_bars, args.repeat),
        }
    print(json.dumps(result) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
