"""The tear sheet: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched)
with the equity and drawdown charts (a log-scale toggle), a buy-and-hold benchmark and its metrics,
monthly returns, rolling Sharpe, trade statistics, the trades, and the run's provenance.
"""

from __future__ import annotations

import hashlib
import html
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from coinbt import __version__
from coinbt.engine.ledger import Trades
from coinbt.engine.metrics import METRIC_NAMES, Metrics
from coinbt.errors import DataError
from coinbt.report import analysis
from coinbt.report._svg import Series, downsample, line_chart
from coinbt.report.tables import iso_ms

if TYPE_CHECKING:
    import os

    from coinbt.engine.result import BacktestResult

__all__ = (
    "CHART_POINTS",
    "TRADE_ROWS",
    "Provenance",
    "ReportData",
    "render",
    "strategy_source",
    "write_result_report",
)

CHART_POINTS = 2000
TRADE_ROWS = 500  # the last trades listed in full (every trade is in the statistics)
STRATEGY_COLOR, BENCHMARK_COLOR, DRAWDOWN_COLOR = "#2563eb", "#9ca3af", "#dc2626"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where the result comes from, so a reader can check it against the log."""

    spec: dict[str, Any]
    data: str
    strategy_source: str
    result_digest: str
    task_id: str | None = None
    log_position: int | None = None
    event_hash: str | None = None
    recorded_at: str | None = None


@dataclass(frozen=True, slots=True)
class ReportData:
    title: str
    ts: NDArray[np.int64]
    equity: NDArray[np.float64]
    close: NDArray[np.float64]  # the (first) asset's closes
    interval_ms: int
    cash: float
    fee_rate: float
    metrics: Metrics
    trades: Trades
    symbols: tuple[str, ...]
    provenance: Provenance
    generated: str = field(default="")
    # A portfolio's every asset's closes, aligned: the benchmark holds an equal share of each
    # (empty: the one asset's ``close``).
    closes: tuple[NDArray[np.float64], ...] = ()


def strategy_source(name: str) -> str:
    """The built-in strategy's signal code and the sha256 of its module's source; the rules text
    or plugin record when the spec carries one is in the spec itself."""
    from coinbt.engine.strategies import STRATEGIES

    strategy = STRATEGIES.get(name)
    if strategy is None:
        return f"{name}: not a built-in strategy of coinbt {__version__} (see the spec)"
    fn = strategy.signal_fn
    try:
        code = inspect.getsource(fn)
        module = inspect.getsource(inspect.getmodule(fn))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return f"builtin {name} (coinbt {__version__}); source not available"
    digest = hashlib.sha256(module.encode()).hexdigest()
    return (
        f"builtin {name}, coinbt {__version__}, {fn.__module__} "
        f"(module source sha256 {digest})\n\n{strategy.description}\n\n{code}"
    )


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:,.2f} %"


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


PERCENT = {
    "total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "avg_trade_return",
    "best_trade", "worst_trade", "exposure",
}  # fmt: skip
LABELS = {
    "final_equity": "Final equity", "total_return": "Total return", "cagr": "CAGR",
    "annual_volatility": "Annual volatility", "sharpe": "Sharpe", "sortino": "Sortino",
    "max_drawdown": "Max drawdown", "calmar": "Calmar", "num_trades": "Trades",
    "closed_trades": "Closed trades", "win_rate": "Win rate", "profit_factor": "Profit factor",
    "avg_trade_return": "Avg trade return", "best_trade": "Best trade",
    "worst_trade": "Worst trade", "exposure": "Exposure", "fees_paid": "Fees paid",
}  # fmt: skip
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
BENCHMARKED = (
    "final_equity", "total_return", "cagr", "annual_volatility", "sharpe", "sortino",
    "max_drawdown", "calmar",
)  # fmt: skip


def _metric(name: str, value: Any) -> str:
    if value is None:
        return "–"
    if name in PERCENT:
        return _pct(float(value))
    if isinstance(value, int):
        return f"{value:,}"
    return _num(float(value))


def _metrics_table(metrics: Metrics, bench: Metrics) -> str:
    rows = []
    for name in METRIC_NAMES:
        if name not in metrics:
            continue
        b = _metric(name, bench.get(name)) if name in BENCHMARKED else ""
        rows.append(
            f'<tr data-metric="{name}"><th>{LABELS.get(name, name)}</th>'
            f"<td>{_metric(name, metrics[name])}</td><td class=bench>{b}</td></tr>"
        )
    return (
        '<table class="metrics" id="metrics"><thead><tr><th></th><th>Strategy</th>'
        "<th>Buy &amp; hold</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _heat(r: float | None, scale: float) -> str:
    if r is None:
        return "<td class=empty></td>"
    a = min(1.0, abs(r) / scale) if scale > 0 else 0.0
    color = (
        f"rgba(22,163,74,{0.12 + 0.7 * a:.2f})"
        if r >= 0
        else f"rgba(220,38,38,{0.12 + 0.7 * a:.2f})"
    )
    return f'<td style="background:{color}">{r * 100:.1f}</td>'


def _monthly_table(m: analysis.MonthlyReturns) -> str:
    values = [abs(r) for row in m.returns for r in row if r is not None]
    scale = max(values) if values else 0.0
    head = "".join(f"<th>{x}</th>" for x in MONTHS)
    rows = [
        f"<tr><th>{year}</th>{''.join(_heat(r, scale) for r in row)}"
        f"<td class=year>{yearly * 100:.1f}</td></tr>"
        for year, row, yearly in zip(m.years, m.returns, m.yearly, strict=True)
    ]
    return (
        f'<table class="heatmap" id="monthly"><thead><tr><th>%</th>{head}<th>Year</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _stats_table(stats: dict[str, Any]) -> str:
    shown: list[tuple[str, str]] = [
        ("Trades (open)", f"{stats['trades']:,} ({stats['open']:,})"),
        ("Long / short", f"{stats['long']:,} / {stats['short']:,}"),
        ("Win rate", _pct(stats["win_rate"])),
        ("Average win", _num(stats["avg_win"])),
        ("Average loss", _num(stats["avg_loss"])),
        ("Profit factor", _num(stats["profit_factor"])),
        ("Expectancy (PnL per trade)", _num(stats["expectancy"])),
        ("Average return", _pct(stats["avg_return"])),
        ("Best / worst return", f"{_pct(stats['best_return'])} / {_pct(stats['worst_return'])}"),
        ("Total PnL (net of fees)", _num(stats["total_pnl"])),
        ("Average duration", f"{_num(stats['avg_bars'], 1)} bars"
         + (f" ({_num(stats['avg_hours'], 1)} h)" if stats["avg_hours"] is not None else "")),
        ("Exits", ", ".join(f"{k} {v:,}" for k, v in stats["exit_reasons"].items()) or "–"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in shown)
    return f'<table class="stats" id="trade-stats"><tbody>{rows}</tbody></table>'


def _trades_table(trades: Trades, ts: NDArray[np.int64], symbols: Sequence[str]) -> str:
    rows = trades.to_dicts(ts, symbols)
    hidden = max(0, len(rows) - TRADE_ROWS)
    rows = rows[hidden:]
    times = iso_ms(np.array([r["entry_ts"] for r in rows], dtype=np.int64))
    body = []
    for r, entry in zip(rows, times, strict=True):
        exit_time = "open" if r["exit_ts"] is None else iso_ms(np.array([r["exit_ts"]]))[0]
        body.append(
            f'<tr class="{r["side"]}"><td>{html.escape(r["symbol"])}</td><td>{r["side"]}</td>'
            f"<td>{entry[:16].replace('T', ' ')}</td><td>{_num(r['entry_price'], 4)}</td>"
            f"<td>{exit_time[:16].replace('T', ' ')}</td><td>{_num(r['exit_price'], 4)}</td>"
            f"<td>{r['qty']:.6g}</td><td>{_num(r['pnl'])}</td><td>{_pct(r['return'])}</td>"
            f"<td>{'' if r['duration_bars'] is None else r['duration_bars']}</td>"
            f"<td>{r['exit_reason']}</td></tr>"
        )
    note = (
        f"<p class=note>The last {len(rows):,} of {len(rows) + hidden:,} trades.</p>"
        if hidden
        else ""
    )
    return (
        note + '<table class="trades" id="trades"><thead><tr><th>Symbol</th><th>Side</th>'
        "<th>Entry (UTC)</th><th>Entry price</th><th>Exit (UTC)</th><th>Exit price</th>"
        "<th>Qty</th><th>PnL</th><th>Return</th><th>Bars</th><th>Exit reason</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _provenance(p: Provenance) -> str:
    rows = [
        ("Task", p.task_id or "– (run in Python, not in the log)"),
        ("Data", p.data),
        ("Result digest (sha256)", p.result_digest),
        ("Log position of Completed", "–" if p.log_position is None else str(p.log_position)),
        ("Event hash", p.event_hash or "–"),
        ("Recorded at", p.recorded_at or "–"),
    ]
    body = "".join(f"<tr><th>{k}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in rows)
    spec = html.escape(json.dumps(p.spec, indent=2, sort_keys=True, default=str))
    return (
        f'<table class="provenance" id="provenance"><tbody>{body}</tbody></table>'
        f"<h3>Spec</h3><pre id=spec>{spec}</pre>"
        f"<h3>Strategy source</h3><pre id=strategy-source>{html.escape(p.strategy_source)}</pre>"
        "<p class=note>Check: <code>coinbt audit verify</code> confirms the hash chain up to this "
        "position; the Completed event at this position records the result digest above, and "
        "re-running the spec on the same data reproduces it.</p>"
    )


CSS = """
:root{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#111827}
body{margin:0 auto;max-width:1100px;padding:16px 20px 48px}
h1{font-size:20px;margin:8px 0 2px}
h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
h3{font-size:14px;margin:14px 0 6px}.sub{color:#6b7280;margin:0 0 12px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #f3f4f6}th{font-weight:600}
tbody th{text-align:left}.metrics td.bench{color:#6b7280}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px}
@media (max-width:760px){.grid2{grid-template-columns:1fr}}
.chart{width:100%;height:auto;display:block}.chart .grid{stroke:#e5e7eb}
.chart text{font-size:11px;fill:#6b7280}.legend{font-size:12px;color:#374151;margin:4px 0}
.legend i{display:inline-block;width:14px;height:3px;margin:0 4px 3px 10px;vertical-align:middle}
.scale-log .linear,.scale-linear .log{display:none}
#log:checked~.charts .linear{display:none}#log:checked~.charts .log{display:block}
#log:not(:checked)~.charts .log{display:none}
.heatmap td{min-width:42px;text-align:center}.heatmap td.empty{background:#fafafa}
.heatmap td.year{font-weight:600}.trades{font-size:12px;width:100%}
.trades tr.long td:nth-child(2){color:#16a34a}.trades tr.short td:nth-child(2){color:#dc2626}
pre{background:#f9fafb;border:1px solid #e5e7eb;padding:8px;overflow:auto;font-size:12px;
white-space:pre-wrap}
code{font-size:12px;word-break:break-all}.note{color:#6b7280;font-size:12px}
.provenance td{text-align:left}.scroll{overflow-x:auto}
"""


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<i style="background:{c}"></i>{html.escape(n)}' for n, c in items)
        + "</div>"
    )


def _benchmark_note(assets: int) -> str:
    if assets == 1:
        return "all the cash at the first bar's close"
    return f"an equal share of the cash in each of the {assets} assets at the first bar's close"


def render(data: ReportData, *, points: int = CHART_POINTS) -> str:
    """The whole HTML document."""
    ts, equity = np.asarray(data.ts), np.asarray(data.equity, dtype=np.float64)
    n = len(equity)
    closes = data.closes if len(data.closes) > 1 else (data.close,)
    bench = analysis.benchmark(closes, data.cash, data.fee_rate, data.interval_ms)
    dd = analysis.drawdown(equity)
    bdd = analysis.drawdown(bench.equity)
    window = analysis.rolling_window(data.interval_ms, n)
    sharpe = analysis.rolling_sharpe(equity, window, data.interval_ms)
    keep = downsample(n, points, equity, bench.equity, dd)
    t = ts[keep]
    money: Callable[[float], str] = lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.4g}"  # noqa: E731
    eq_series = [
        Series("Buy & hold", bench.equity[keep], BENCHMARK_COLOR, dashed=True),
        Series("Strategy", equity[keep], STRATEGY_COLOR),
    ]
    equity_linear = line_chart(t, eq_series, fmt=money, label="equity, linear scale")
    equity_log = line_chart(t, eq_series, log=True, fmt=money, label="equity, log scale")
    dd_chart = line_chart(
        t,
        [
            Series("Buy & hold drawdown", bdd[keep], BENCHMARK_COLOR, dashed=True),
            Series("Drawdown", dd[keep], DRAWDOWN_COLOR, fill=True),
        ],
        height=180,
        fmt=lambda v: f"{v * 100:.0f} %",
        label="drawdown",
    )
    sk = downsample(n, points, np.nan_to_num(sharpe))
    sharpe_chart = line_chart(
        ts[sk],
        [Series("Rolling Sharpe", sharpe[sk], "#7c3aed")],
        height=180,
        fmt=lambda v: f"{v:.1f}",
        label="rolling Sharpe",
    )
    monthly = analysis.monthly_returns(ts, equity, data.cash)
    stats = analysis.trade_stats(data.trades, data.interval_ms)
    start, end = iso_ms(np.array([ts[0], ts[-1]], dtype=np.int64))
    title = html.escape(data.title)
    days = window * data.interval_ms / 86_400_000 if data.interval_ms else 0
    generated = html.escape(data.generated or f"coinbt {__version__}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="generator" content="coinbt {__version__}">
<title>{title}</title><style>{CSS}</style></head>
<body>
<h1>{title}</h1>
<p class="sub">{n:,} bars, {start[:16].replace("T", " ")} to {end[:16].replace("T", " ")} UTC ·
{html.escape(", ".join(s for s in data.symbols if s) or "one asset")} · {generated}</p>
<h2>Equity</h2>
<input type="checkbox" id="log"> <label for="log">log scale</label>
<div class="charts">
{_legend([("Strategy", STRATEGY_COLOR), ("Buy & hold", BENCHMARK_COLOR)])}
<div class="linear" id="equity-linear">{equity_linear}</div>
<div class="log" id="equity-log">{equity_log}</div>
</div>
<h2>Drawdown</h2>
{_legend([("Strategy", DRAWDOWN_COLOR), ("Buy & hold", BENCHMARK_COLOR)])}
<div id="drawdown">{dd_chart}</div>
<div class="grid2">
<div><h2>Metrics</h2>{_metrics_table(data.metrics, bench.metrics)}
<p class="note">Buy &amp; hold: {_benchmark_note(len(closes))}, fee paid, held to the
end. Definitions: docs/engine.md.</p></div>
<div><h2>Trade statistics</h2>{_stats_table(stats)}
<p class="note">PnL is net of every fee the trade paid; an open trade is marked at the last close
and left out of the ratios.</p></div>
</div>
<h2>Rolling Sharpe ({window:,} bars{f", {days:.3g} days" if days else ""})</h2>
<div id="rolling-sharpe">{sharpe_chart}</div>
<h2>Monthly returns (%)</h2>
<div class="scroll">{_monthly_table(monthly)}</div>
<h2>Trades</h2>
<div class="scroll">{_trades_table(data.trades, ts, data.symbols)}</div>
<h2>Provenance</h2>
{_provenance(data.provenance)}
</body></html>
"""


def write_result_report(result: BacktestResult, path: str | os.PathLike[str]) -> None:
    """``result.report(path)``: the tear sheet of a run made in Python (no log position: it was
    never in a log; the digest still lets a reader reproduce it)."""
    from coinbt.engine.ledger import ledger_of

    bars = result.bars
    if bars is None:
        raise DataError("this result does not hold its bars (run it with engine.run)")
    spec = result.spec
    first, last = iso_ms(np.array([bars.ts[0], bars.ts[-1]], dtype=np.int64))
    data = ReportData(
        title=f"coinbt: {spec.strategy} {json.dumps(result.params, sort_keys=True)}",
        ts=bars.ts,
        equity=result.equity,
        close=bars.close,
        interval_ms=bars.interval_ms,
        cash=float(spec.cash),
        fee_rate=float(spec.fee_bps) / 10_000,
        metrics=dict(result.metrics),
        trades=ledger_of(result).trades,
        symbols=result.symbols,
        closes=tuple(b.close for b in result.assets),
        provenance=Provenance(
            spec={**spec.to_dict(), "params": dict(result.params)},
            data=f"{len(bars):,} bars given in Python, {first} to {last}, "
            f"interval {bars.interval_ms} ms (close sha256 "
            f"{hashlib.sha256(np.ascontiguousarray(bars.close).tobytes()).hexdigest()})",
            strategy_source=strategy_source(spec.strategy),
            result_digest=result.digest(),
        ),
    )
    Path(path).write_text(render(data), encoding="utf-8")
