"""The backtest engine: pure, synchronous numpy (DESIGN.md section 5; docs/engine.md).

    >>> from coinbt import engine
    >>> bars = engine.synthetic(10_000, seed=1)
    >>> result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 10, "slow": 30}), bars)
    >>> result.final_equity > 0
    True

It imports nothing from coinbt but ``coinbt.errors``, and nothing asynchronous.
"""

from __future__ import annotations

from coinbt.engine._csv import load_csv, parse_csv
from coinbt.engine.backtest import run
from coinbt.engine.data import Bars, load_bars, parse_interval, save_bars
from coinbt.engine.ledger import Ledger, PositionSummary, Trades, ledger, ledger_of
from coinbt.engine.metrics import METRIC_NAMES
from coinbt.engine.overfit import DeflatedSharpe, deflate_sweep, deflated_sharpe
from coinbt.engine.portfolio import synthetic_portfolio
from coinbt.engine.result import BacktestResult, Fill, Fills
from coinbt.engine.spec import BacktestSpec, ValidSpec, validate_spec
from coinbt.engine.strategies import STRATEGIES, Strategy
from coinbt.engine.sweep import SweepResult, sweep
from coinbt.engine.synthetic import synthetic
from coinbt.engine.walkforward import WalkForwardResult, walk_forward

__all__ = (
    "METRIC_NAMES",
    "STRATEGIES",
    "BacktestResult",
    "BacktestSpec",
    "Bars",
    "DeflatedSharpe",
    "Fill",
    "Fills",
    "Ledger",
    "PositionSummary",
    "Strategy",
    "SweepResult",
    "Trades",
    "ValidSpec",
    "WalkForwardResult",
    "deflate_sweep",
    "deflated_sharpe",
    "ledger",
    "ledger_of",
    "load_bars",
    "load_csv",
    "parse_csv",
    "parse_interval",
    "run",
    "save_bars",
    "sweep",
    "synthetic",
    "synthetic_portfolio",
    "validate_spec",
    "walk_forward",
)
