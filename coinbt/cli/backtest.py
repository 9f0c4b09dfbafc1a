"""``coinbt backtest`` and ``coinbt sweep``: the engine on the command line, no server needed.

The engine (numpy) is imported inside the handlers, so ``coinbt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coinbt import defaults
from coinbt.errors import DataError, SpecError

if TYPE_CHECKING:
    from coinbt.engine import Bars, SweepResult

__all__ = ("parse_grid_value", "parse_param_value", "register")

STRATEGY_NAMES = (
    "sma_cross",
    "ema_cross",
    "rsi_reversion",
    "bollinger_breakout",
    "donchian_breakout",
    "buy_and_hold",
)
MAX_SYNTHETIC_BARS = 10_000_000

_BACKTEST_EXAMPLES = """\
examples:
  coinbt backtest --synthetic 100000:1 --strategy sma_cross -p fast=10 -p slow=30
  coinbt backtest --data BTCUSDT-1m.csv --strategy rsi_reversion -p period=14 -p lower=25 --json
  coinbt backtest --synthetic 5000 --interval 1h --strategy buy_and_hold --fill close
  coinbt backtest --synthetic 100000 -p fast=10 -p slow=30 \
      --entry "cross_above(sma(close, fast), sma(close, slow)) and rsi(close, 14) < 70" \
      --exit "cross_below(sma(close, fast), sma(close, slow))"
  coinbt backtest --synthetic 100000 --strategy-file my_strategy.py -p window=20

Data: --data reads a CSV with the header timestamp,open,high,low,close,volume (ISO-8601 or epoch
s/ms timestamps) or a Binance kline CSV; --synthetic BARS[:SEED] generates a deterministic
geometric-Brownian-motion series (seed 1 by default) starting 2024-01-01T00:00:00Z.
Parameter values (-p KEY=VALUE) are read as an integer, else a number, else true/false, else text.
Bad input prints one line 'coinbt: error: ...' and exits with status 2.
"""

_SWEEP_EXAMPLES = """\
examples:
  coinbt sweep --synthetic 100000 --strategy sma_cross -g fast=5:50:5 -g slow=20:200:20
  coinbt sweep --data BTCUSDT-1m.csv --strategy rsi_reversion -g period=7,14,21 \\
      -g lower=20:35:5 --sort total_return --top 5 --json

  coinbt sweep --synthetic 1000000 --strategy sma_cross -g fast=5:50:5 -g slow=20:200:20 \\
      --workers 2
  coinbt sweep --synthetic 1000000 --strategy sma_cross -g fast=5:50:5 -g slow=20:200:20 \\
      --dask tcp://scheduler:8786
  coinbt sweep --synthetic 100000 -g fast=5:20:5 -g slow=30:90:30 -p level=70 \\
      --entry "cross_above(sma(close, fast), sma(close, slow)) and rsi(close, 14) < level" \\
      --exit "cross_below(sma(close, fast), sma(close, slow))"

A grid value is a range START:STOP[:STEP] (STOP included, STEP 1 by default) or a comma list.
Parameters not in the grid keep their defaults. Combinations that break a rule (such as
fast >= slow) are skipped and counted. Rows are sorted by --sort (a metric or a parameter),
highest first unless --ascending; rows where that metric is undefined come last.
--workers N or --dask split the grid into chunks run in parallel, in N local worker processes or
on a Dask cluster (tcp://HOST:PORT, or local:N for a local one; pip install 'coinbt[distributed]');
the table is the same, row for row (docs/distributed.md).
"""

_PERCENT = {
    "total_return",
    "cagr",
    "annual_volatility",
    "max_drawdown",
    "win_rate",
    "avg_trade_return",
    "best_trade",
    "worst_trade",
    "exposure",
}
_MONEY = {"final_equity", "fees_paid"}


def register(subparsers: Any) -> None:
    backtest = subparsers.add_parser(
        "backtest",
        help="run one backtest locally (no server)",
        description="Run one backtest locally and print its metrics and fills.",
        epilog=_BACKTEST_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(backtest)
    backtest.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy parameter, e.g. -p fast=10 (repeatable)",
    )
    backtest.add_argument(
        "--fills",
        type=int,
        default=10,
        metavar="N",
        help="fills to show in the table (default 10; --json always has them all)",
    )
    backtest.set_defaults(func=_run_backtest)

    sweep = subparsers.add_parser(
        "sweep",
        help="backtest every combination of a parameter grid",
        description="Backtest every combination of a parameter grid and rank them by a metric.",
        epilog=_SWEEP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep_data = _add_common(sweep)
    sweep_data.add_argument(
        "--dataset", metavar="NAME", help="a dataset imported on the server (with --submit)"
    )
    sweep.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="rules only: a parameter that stays fixed (repeatable)",
    )
    sweep.add_argument(
        "-g",
        "--grid",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="values of one parameter: START:STOP[:STEP] or a comma list (repeatable)",
    )
    sweep.add_argument(
        "--sort", default="sharpe", metavar="METRIC", help="metric to rank by (default sharpe)"
    )
    sweep.add_argument("--ascending", action="store_true", help="lowest first")
    sweep.add_argument(
        "--top", type=int, default=None, metavar="N", help="rows to show (default: 20, all in JSON)"
    )
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=None, metavar="N", help="split over N local processes"
    )
    where.add_argument(
        "--dask",
        default=None,
        metavar="TARGET",
        help="split over a Dask cluster: tcp://HOST:PORT, or local:N for a local cluster",
    )
    sweep.add_argument(
        "--chunks",
        type=int,
        default=None,
        metavar="N",
        help="chunks to split the grid into (default: one per worker)",
    )
    sweep.add_argument(
        "--walk-forward",
        metavar="TRAIN:TEST",
        help="walk-forward analysis: best parameters on each TRAIN window (e.g. 180d), traded "
        "on the next TEST window (e.g. 30d)",
    )
    sweep.add_argument(
        "--anchored", action="store_true", help="walk-forward train windows all start at bar 0"
    )
    server = sweep.add_argument_group("as a task on a running server (docs/sweeps.md)")
    server.add_argument("--submit", action="store_true", help="submit the sweep to --url")
    server.add_argument("--wait", action="store_true", help="with --submit: follow it to its end")
    server.add_argument(
        "--url",
        default=os.environ.get("COINBT_URL", defaults.URL),
        help=f"the server (default: $COINBT_URL or {defaults.URL})",
    )
    server.add_argument(
        "--token",
        default=os.environ.get("COINBT_API_TOKEN"),
        help="API token (default: $COINBT_API_TOKEN)",
    )
    server.add_argument("--timeout", type=float, help="seconds before the sweep is stopped")
    sweep.set_defaults(func=_run_sweep)


def _add_common(parser: argparse.ArgumentParser) -> Any:
    """The options of ``backtest`` and ``sweep``; returns the data group (one of them)."""
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--data",
        metavar="CSV",
        action="append",
        help="OHLCV CSV file (header or Binance kline); repeat it for a portfolio",
    )
    data.add_argument(
        "--synthetic",
        metavar="BARS[:SEED]",
        help="a deterministic synthetic series of BARS bars (seed 1 unless given)",
    )
    parser.add_argument(
        "--symbols",
        type=int,
        default=1,
        metavar="N",
        help="with --synthetic: a portfolio of N synthetic assets (seeds SEED..SEED+N-1)",
    )
    parser.add_argument(
        "--strategy",
        default=None,
        metavar="NAME",
        help=f"strategy: {', '.join(STRATEGY_NAMES)}, rules (with --entry/--exit) or a plugin",
    )
    rules = parser.add_argument_group("rules (docs/strategies.md; implies --strategy rules)")
    for flag, what in (
        ("--entry", "enter long when this condition holds"),
        ("--exit", "leave when this condition holds"),
        ("--short-entry", "bearish entry condition (optional)"),
        ("--short-exit", "bearish exit condition (optional)"),
    ):
        rules.add_argument(flag, default=None, metavar="RULE", help=what)
    parser.add_argument(
        "--strategy-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="load plugin strategies from this Python file (--strategy picks one if it has "
        "several)",
    )
    parser.add_argument("--cash", type=float, default=10_000.0, help="starting cash (10000)")
    parser.add_argument(
        "--fee-bps", type=float, default=10.0, help="fee per fill in basis points (10 = 0.1%%)"
    )
    parser.add_argument(
        "--slippage-bps", type=float, default=0.0, help="slippage in basis points (0)"
    )
    parser.add_argument(
        "--fill",
        choices=("next_open", "close"),
        default="next_open",
        help="fill a signal at the next bar's open (default) or at its bar's close",
    )
    trading = parser.add_argument_group("direction, stops and sizing (docs/engine.md)")
    trading.add_argument(
        "--direction",
        default="long",
        metavar="long|short|both",
        help="trade long (default), short, or both ways (a reversal is one fill)",
    )
    trading.add_argument(
        "--sl-stop",
        type=float,
        default=None,
        metavar="F",
        help="stop loss at this fraction below (short: above) the entry price, 0 < F < 1",
    )
    trading.add_argument(
        "--tp-stop",
        type=float,
        default=None,
        metavar="F",
        help="take profit at this fraction above (short: below) the entry price, F > 0",
    )
    trading.add_argument(
        "--trail", action="store_true", help="make --sl-stop a trailing stop (needs --sl-stop)"
    )
    trading.add_argument(
        "--size",
        type=float,
        default=None,
        metavar="X",
        help="position size, read as --size-type says (not with all)",
    )
    trading.add_argument(
        "--size-type",
        default="all",
        metavar="TYPE",
        help="all (default: all the cash), percent (of cash), value (cash amount), amount "
        "(units), target_percent (of equity; for portfolios)",
    )
    parser.add_argument(
        "--interval",
        metavar="INTERVAL",
        default=None,
        help="bar interval such as 1m, 1h, 1d: of the synthetic series (default 1m); with --data "
        "it overrides the interval inferred from the timestamps (used to annualize metrics)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return data


# --- parsing ------------------------------------------------------------------------------------


def parse_param_value(text: str) -> int | float | bool | str:
    """``-p`` values: an integer, else a float, else ``true``/``false``, else the text itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or not value.strip():
        raise SpecError(f"{text!r}: expected KEY=VALUE, such as fast=10", field=option)
    return key, value.strip()


def _params(items: Sequence[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for item in items:
        key, value = _key_value(item, "-p")
        if key in params:
            raise SpecError(f"given twice (-p {key}=...)", field=f"params.{key}")
        params[key] = parse_param_value(value)
    return params


def parse_grid_value(text: str) -> list[int | float | bool | str]:
    """``-g`` values: ``START:STOP[:STEP]`` (STOP included) or ``a,b,c`` (or a single value)."""
    if ":" in text:
        parts = [parse_param_value(p.strip()) for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) for p in parts
        ):
            raise ValueError(f"{text!r} is not a range START:STOP[:STEP] of numbers")
        numbers = [float(p) for p in parts]
        start, stop = numbers[0], numbers[1]
        step = numbers[2] if len(numbers) == 3 else 1.0
        if step <= 0:
            raise ValueError(f"{text!r}: the step must be positive")
        if stop < start:
            raise ValueError(f"{text!r}: the stop is below the start")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > 100_000:
            raise ValueError(f"{text!r} has {count} values (at most 100000)")
        if all(isinstance(p, int) for p in parts):
            return list(
                range(int(parts[0]), int(parts[1]) + 1, int(parts[2]) if len(parts) == 3 else 1)
            )
        return [round(start + i * step, 12) for i in range(count)]
    values = [parse_param_value(p.strip()) for p in text.split(",")]
    if any(v == "" for v in values):
        raise ValueError(f"{text!r} has an empty value")
    return values


def _grid(items: Sequence[str]) -> dict[str, list[int | float | bool | str]]:
    grid: dict[str, list[int | float | bool | str]] = {}
    for item in items:
        key, value = _key_value(item, "-g")
        if key in grid:
            raise SpecError(f"given twice (-g {key}=...)", field=f"grid.{key}")
        try:
            grid[key] = parse_grid_value(value)
        except ValueError as e:
            raise SpecError(str(e), field=f"grid.{key}") from None
    return grid


def _synthetic(args: argparse.Namespace) -> tuple[int, int, str]:
    """``--synthetic BARS[:SEED]`` and ``--interval``, checked: (bars, seed, interval)."""
    bars_text, _, seed_text = args.synthetic.partition(":")
    try:
        count = int(bars_text)
        seed = int(seed_text) if seed_text else 1
    except ValueError:
        raise SpecError(
            f"{args.synthetic!r}: expected BARS or BARS:SEED (integers), e.g. 100000:1",
            field="--synthetic",
        ) from None
    if not 1 <= count <= MAX_SYNTHETIC_BARS:
        raise SpecError(
            f"{count} bars: must be between 1 and {MAX_SYNTHETIC_BARS:,}", field="--synthetic"
        )
    if seed < 0:
        raise SpecError(f"seed {seed}: must not be negative", field="--synthetic")
    return count, seed, args.interval or "1m"


def _load_data(args: argparse.Namespace) -> tuple[Bars, dict[str, Any]]:
    from coinbt import engine

    if args.synthetic is not None:
        count, seed, interval = _synthetic(args)
        bars = engine.synthetic(count, seed=seed, interval=interval)
        return bars, {"synthetic": {"bars": count, "seed": seed, "interval": interval}}
    path = args.data[0]
    if len(args.data) > 1:
        raise SpecError("a sweep runs on one asset: give --data once", field="--data")
    bars = _load_csv(path)
    if args.interval:
        bars = bars.with_interval(engine.parse_interval(args.interval))
    return bars, {"csv": path, "bars": len(bars), "interval_ms": bars.interval_ms}


def _load_csv(path: str) -> Bars:
    from coinbt import engine

    try:
        return engine.load_csv(path)
    except DataError as e:
        if path in str(e):
            raise
        raise DataError(f"{path}: {e}") from e


def _load_assets(args: argparse.Namespace) -> tuple[Bars | dict[str, Bars], dict[str, Any]]:
    """One asset, or a portfolio: several --data files or --synthetic with --symbols N."""
    from coinbt import engine

    if args.symbols < 1:
        raise SpecError(f"{args.symbols}: must be at least 1", field="--symbols")
    if args.synthetic is not None and args.symbols > 1:
        count, seed, interval = _synthetic(args)
        assets = engine.synthetic_portfolio(count, args.symbols, seed=seed, interval=interval)
        info = {"bars": count, "seed": seed, "interval": interval, "symbols": args.symbols}
        return assets, {"synthetic": info}
    if args.synthetic is None and args.symbols > 1:
        raise SpecError("--symbols goes with --synthetic; repeat --data instead", field="--symbols")
    if args.data is None or len(args.data) == 1:
        return _load_data(args)
    portfolio: dict[str, Bars] = {}
    for i, path in enumerate(args.data):
        name = os.path.splitext(os.path.basename(path))[0] or f"asset{i}"
        if name in portfolio:
            raise SpecError(f"{path}: two files named {name!r}", field=f"--data[{i}]")
        bars = _load_csv(path)
        if args.interval:
            bars = bars.with_interval(engine.parse_interval(args.interval))
        portfolio[name] = bars
    return portfolio, {"csv": list(args.data)}


def _trading_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "direction": args.direction,
        "sl_stop": args.sl_stop,
        "tp_stop": args.tp_stop,
        "sl_trail": args.trail,
        "size": args.size,
        "size_type": args.size_type,
    }


# --- output -----------------------------------------------------------------------------------


def _format_metric(name: str, value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    assert isinstance(value, float)
    if name in _PERCENT:
        return f"{value * 100:,.2f}%"
    if name in _MONEY:
        return f"{value:,.2f}"
    return f"{value:,.3f}"


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0) -> str:
    """A plain-text table: the first ``left`` columns left-aligned, the others right-aligned."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _emit(text: str) -> None:
    """Print, and stay quiet if the reader went away (``coinbt ... | head``)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _describe_data(data: dict[str, Any], bars: int) -> str:
    if "synthetic" in data:
        s = data["synthetic"]
        many = f" x {s['symbols']} assets" if s.get("symbols", 1) > 1 else ""
        return f"{bars:,} synthetic {s['interval']} bars{many} (seed {s['seed']})"
    if isinstance(data["csv"], list):
        return f"{bars:,} aligned bars of {len(data['csv'])} assets ({', '.join(data['csv'])})"
    return f"{bars:,} bars from {data['csv']}"


_RULE_FLAGS = ("entry", "exit", "short_entry", "short_exit")


def _rules(args: argparse.Namespace) -> dict[str, str] | None:
    given = {k: getattr(args, k) for k in _RULE_FLAGS if getattr(args, k) is not None}
    return given or None


def _strategy_name(args: argparse.Namespace) -> str:
    """The strategy to run: ``rules`` with --entry/--exit, a --strategy-file's plugin, or
    --strategy; ``SpecError`` naming the option otherwise."""
    rules = _rules(args)
    if args.strategy_file is not None:
        from coinbt.engine.plugins import load_file, register

        try:
            found = load_file(args.strategy_file)
        except FileNotFoundError:
            raise SpecError("no such file", field="--strategy-file") from None
        except Exception as e:
            raise SpecError(
                f"cannot load {args.strategy_file}: {type(e).__name__}: {e}",
                field="--strategy-file",
            ) from None
        if not found:
            raise SpecError("defines no strategy (see docs/strategies.md)", field="--strategy-file")
        for strategy in found:
            register(strategy)
        if args.strategy is None:
            if len(found) > 1:
                names = ", ".join(s.name for s in found)
                raise SpecError(f"the file has several strategies ({names})", field="--strategy")
            return found[0].name
    if rules is not None:
        if args.strategy not in (None, "rules"):
            raise SpecError("--entry/--exit go with --strategy rules", field="--strategy")
        return "rules"
    if args.strategy is None:
        raise SpecError(
            "give --strategy NAME, --entry/--exit rules or --strategy-file", field="--strategy"
        )
    return str(args.strategy)


def _run_backtest(args: argparse.Namespace) -> int:
    from coinbt import engine

    params = _params(args.param)
    spec = engine.BacktestSpec(
        _strategy_name(args),
        params,
        args.cash,
        args.fee_bps,
        args.slippage_bps,
        args.fill,
        _rules(args),
        **_trading_options(args),
    )
    many = args.symbols > 1 or (args.data is not None and len(args.data) > 1)
    n_assets = args.symbols if args.synthetic is not None else len(args.data or ())
    engine.validate_spec(spec, n_assets=max(1, n_assets))  # bad input fails before the data
    bars, data = _load_assets(args)
    result = engine.run(spec, bars)
    size = len(result.equity)
    positions = engine.ledger_of(result).positions if many or not spec_is_plain(spec) else ()
    if args.json:
        out = {"spec": spec.to_dict(), "data": data, **result.to_dict(), "digest": result.digest()}
        out["params"] = result.params
        if many:
            out["fills"] = result.fills.to_dicts(result.symbols)
        if positions:
            out["positions"] = [
                {**p.to_dict(), "contribution": (p.realized_pnl + p.unrealized_pnl) / spec.cash}
                for p in positions
            ]
        _emit(json.dumps(out, allow_nan=False))
        return 0
    shown = ", ".join(f"{k}={v}" for k, v in result.params.items()) or "no parameters"
    lines = [
        f"{spec.strategy} ({shown}) on {_describe_data(data, size)}",
        f"cash {args.cash:,.2f}, fee {args.fee_bps:g} bps, slippage {args.slippage_bps:g} bps, "
        f"fill {args.fill}" + _describe_trading(spec),
        "",
        _table(
            ["metric", "value"], [[k, _format_metric(k, v)] for k, v in result.metrics.items()], 1
        ),
    ]
    if positions:
        rows = [
            [
                p.symbol or "-",
                f"{p.qty:.6g}",
                f"{p.realized_pnl:,.2f}",
                f"{p.unrealized_pnl:,.2f}",
                f"{p.fees:,.2f}",
                str(p.trades),
                f"{(p.realized_pnl + p.unrealized_pnl) / spec.cash * 100:,.2f}%",
            ]
            for p in positions
        ]
        headers = ["asset", "qty", "realized (net)", "unrealized", "fees", "trades", "contrib."]
        lines.extend(["", _table(headers, rows, 1)])
    fills = result.fills
    open_at_end = any(p.qty for p in positions) if positions else bool(result.final_qty)
    lines.append(
        f"\n{len(fills):,} fills" + (" (a position is open at the end)" if open_at_end else "")
    )
    count = max(0, min(args.fills, len(fills)))
    if count:
        fill_rows = [
            [str(f.bar), _time(f.ts), f.side, f"{f.qty:.6g}", f"{f.price:,.4f}", f"{f.fee:,.4f}"]
            + ([f.reason] if positions else [])
            + ([result.symbols[f.asset]] if many else [])
            for f in (fills[i] for i in range(count))
        ]
        headers = ["bar", "time (UTC)", "side", "qty", "price", "fee"]
        headers += (["reason"] if positions else []) + (["asset"] if many else [])
        lines.append(_table(headers, fill_rows))
        if count < len(fills):
            lines.append(f"... {len(fills) - count:,} more (--fills N shows more, --json all)")
    _emit("\n".join(lines))
    return 0


_TRADING_GRID = ("sl_stop", "tp_stop", "size")


def spec_is_plain(spec: Any) -> bool:
    return bool(
        spec.direction == "long"
        and spec.sl_stop is None
        and spec.tp_stop is None
        and spec.size_type == "all"
    )


def _describe_trading(spec: Any) -> str:
    if spec_is_plain(spec):
        return ""
    parts = [f"direction {spec.direction}"]
    if spec.sl_stop is not None:
        parts.append(f"{'trailing ' if spec.sl_trail else ''}stop loss {spec.sl_stop:g}")
    if spec.tp_stop is not None:
        parts.append(f"take profit {spec.tp_stop:g}")
    parts.append(f"size {spec.size_type}" + ("" if spec.size is None else f" {spec.size:g}"))
    return ", " + ", ".join(parts)


def _run_sweep(args: argparse.Namespace) -> int:
    from coinbt import engine
    from coinbt.cli._progress import ProgressLine

    grid = _grid(args.grid)
    if args.submit:
        from coinbt.cli.sweeps import submit_sweep

        if args.strategy_file is not None:
            raise SpecError(
                "a submitted sweep runs strategies the server has (plugins are installed there)",
                field="--strategy-file",
            )
        return submit_sweep(args, grid, _params(args.param), _rules(args))
    for flag in ("wait", "timeout", "dataset"):
        if getattr(args, flag) not in (None, False):
            raise SpecError("needs --submit", field=f"--{flag}")
    args.strategy = _strategy_name(args)
    strategy: Any = args.strategy
    fixed = _params(args.param)
    if args.strategy == "rules":  # the grid's first values and -p are the rules' parameters
        from coinbt.engine.rules import rules_strategy

        base = {k: v[0] for k, v in grid.items() if k not in fixed and k not in _TRADING_GRID}
        strategy = rules_strategy(_rules(args), {**base, **fixed})
    elif fixed:
        raise SpecError("fixed parameters go in the grid: -g KEY=VALUE", field="-p")
    trading = _trading_options(args)
    split = args.workers is not None or args.dask is not None or args.chunks is not None
    if split and (not spec_is_plain(argparse.Namespace(**trading)) or args.trail):
        raise SpecError(
            "a split sweep (--workers, --dask, --chunks) runs long, all-in, without stops; "
            "run shorts, stops and sizing without it",
            field="--workers",
        )
    if split and any(key in grid for key in _TRADING_GRID):
        raise SpecError(
            "a split sweep grids strategy parameters only; grid stops and sizes without "
            "--workers/--dask",
            field="--workers",
        )
    if args.symbols > 1:
        raise SpecError("a sweep runs on one asset", field="--symbols")
    if args.walk_forward is not None:
        return _run_walk_forward(args, grid, strategy)
    if args.anchored:
        raise SpecError("needs --walk-forward", field="--anchored")
    with ProgressLine(f"sweeping {args.strategy}") as line:
        if split:
            result, data, size = _split_sweep(args, grid, line.fraction)
        else:
            bars, data = _load_data(args)
            size = len(bars)
            result = engine.sweep(
                strategy,
                grid,
                bars,
                cash=args.cash,
                fee_bps=args.fee_bps,
                slippage_bps=args.slippage_bps,
                fill=args.fill,
                sort_by=args.sort,
                descending=not args.ascending,
                progress=line.fraction,
                **trading,
            )
    if args.json:
        out = {"data": data, **result.to_dict(args.top)}
        _emit(json.dumps(out, allow_nan=False))
        return 0
    top = 20 if args.top is None else max(0, args.top)
    order = "lowest" if args.ascending else "highest"
    lines = [
        f"{result.strategy} on {_describe_data(data, size)}: {result.evaluated:,} combinations, "
        f"{result.skipped:,} skipped; {order} {result.sort_by} first"
    ]
    lines.extend(f"  skipped {n:,}: {reason}" for reason, n in result.skip_reasons.items())
    metrics = ["total_return", "sharpe", "max_drawdown", "num_trades", "win_rate"]
    if result.sort_by not in metrics and result.sort_by not in result.param_names:
        metrics.insert(0, result.sort_by)
    headers = ["#", *result.param_names, *metrics]
    rows = [
        [
            str(i),
            *(str(row[p]) for p in result.param_names),
            *(_format_metric(m, row[m]) for m in metrics),
        ]
        for i, row in enumerate(result.rows[:top], start=1)
    ]
    lines.extend(["", _table(headers, rows)])
    if top < len(result.rows):
        lines.append(f"... {len(result.rows) - top:,} more (--top N)")
    _emit("\n".join(lines))
    return 0


def _run_walk_forward(args: argparse.Namespace, grid: dict[str, list[Any]], strategy: Any) -> int:
    """``coinbt sweep --walk-forward TRAIN:TEST``: the walk-forward in this process."""
    from coinbt import engine
    from coinbt.cli._progress import ProgressLine
    from coinbt.cli.sweeps import print_walk_forward

    train, sep, test = args.walk_forward.partition(":")
    if not sep or not train or not test:
        raise SpecError(
            f"takes TRAIN:TEST durations like 180d:30d, got {args.walk_forward!r}",
            field="--walk-forward",
        )
    bars, data = _load_data(args)
    with ProgressLine(f"walk-forward {args.strategy}") as line:
        result = engine.walk_forward(
            strategy,
            grid,
            bars,
            train=train,
            test=test,
            anchored=args.anchored,
            cash=args.cash,
            fee_bps=args.fee_bps,
            slippage_bps=args.slippage_bps,
            fill=args.fill,
            sort_by=args.sort,
            descending=not args.ascending,
            progress=line.fraction,
        )
    summary = {**result.to_dict(), "train": train, "test": test}
    if args.json:
        _emit(json.dumps({"data": data, **summary}, allow_nan=False))
    else:
        print_walk_forward(summary)
    return 0


def _split_sweep(
    args: argparse.Namespace,
    grid: dict[str, list[int | float | bool | str]],
    progress: Callable[[float], None],
) -> tuple[SweepResult, dict[str, Any], int]:
    """The sweep split into chunks on local worker processes (``--workers``) or Dask."""
    import anyio

    from coinbt import engine
    from coinbt.events import SyntheticSpec
    from coinbt.executor.sweeps import plan_sweep, sweep_on

    for option in ("workers", "chunks"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise SpecError(f"{value}: must be at least 1", field=f"--{option}")
    source: Bars | SyntheticSpec
    if args.synthetic is not None:
        count, seed, interval = _synthetic(args)
        engine.parse_interval(interval)
        source = SyntheticSpec(bars=count, seed=seed, interval=interval)
        data: dict[str, Any] = {"synthetic": {"bars": count, "seed": seed, "interval": interval}}
    else:
        source, data = _load_data(args)
    size = source.bars if isinstance(source, SyntheticSpec) else len(source)
    options: dict[str, Any] = {
        "cash": args.cash,
        "fee_bps": args.fee_bps,
        "slippage_bps": args.slippage_bps,
        "fill": args.fill,
        "sort_by": args.sort,
    }
    plan_sweep(args.strategy, grid, size, 1, **options)  # bad input fails before workers start
    opener = _sweep_executor(args)

    async def run() -> SweepResult:
        async with opener as executor:
            return await sweep_on(
                executor,
                args.strategy,
                grid,
                source,
                chunks=args.chunks,
                descending=not args.ascending,
                progress=progress,
                **options,
            )

    return anyio.run(run), data, size


def _sweep_executor(args: argparse.Namespace) -> AbstractAsyncContextManager[Any]:
    from coinbt.errors import InvalidRequestError
    from coinbt.executor.local import open_local_executor

    if args.dask is None:
        return open_local_executor(args.workers)
    try:
        from coinbt.executor.dask import open_dask_executor, parse_dask_target
    except ImportError:
        raise InvalidRequestError(
            "Dask is not installed: pip install 'coinbt[distributed]'", field="--dask"
        ) from None
    try:
        address, workers = parse_dask_target(args.dask)
    except ValueError as e:
        raise InvalidRequestError(str(e), field="--dask") from None
    return open_dask_executor(address, workers)
