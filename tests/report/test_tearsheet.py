"""The tear sheet of a run made in Python: a portfolio's benchmark holds every asset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coinbt import engine
from coinbt.report import analysis


def test_a_portfolio_tear_sheet_benchmarks_every_asset(tmp_path: Path) -> None:
    many = engine.synthetic_portfolio(1200, 2, seed=3, interval="1h")
    spec = engine.BacktestSpec(
        "sma_cross", {"fast": 5, "slow": 20}, size=0.4, size_type="target_percent"
    )
    result = engine.run(spec, many)
    assert [b.close[-1] for b in result.assets] == [b.close[-1] for b in many.values()]
    target = tmp_path / "report.html"
    result.report(target)
    page = target.read_text()
    assert "an equal share of the cash in each of the 2 assets" in page
    both = analysis.benchmark([b.close for b in result.assets], spec.cash, 0.001, 3_600_000)
    first = analysis.benchmark(result.assets[0].close, spec.cash, 0.001, 3_600_000)
    assert not np.allclose(both.equity, first.equity)  # the first asset alone is another curve
    shown = [f"{b.metrics['total_return'] * 100:,.2f} %" for b in (both, first)]
    assert shown[0] != shown[1]
    assert shown[0] in page  # the benchmark column of the metrics table
    assert shown[1] not in page

    single = engine.run(spec, next(iter(many.values())))
    assert single.assets == ()
    single.report(target)
    assert "all the cash at the first bar's close" in target.read_text()
