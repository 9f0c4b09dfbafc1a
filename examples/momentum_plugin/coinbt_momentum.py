"""An example coinbt plugin strategy (docs/strategies.md, "Plugins").

Run it without installing anything::

    coinbt backtest --synthetic 100000 --strategy-file examples/momentum_plugin/coinbt_momentum.py
    coinbt serve --strategies examples/momentum_plugin

or ``pip install examples/momentum_plugin`` to register it through the ``coinbt.strategies``
entry point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__version__ = "0.1.0"


class Momentum:
    """Rate-of-change momentum over ``lookback`` bars, long and short."""

    name = "momentum"
    description = (
        "Momentum, long and short. roc[i] = close[i] / close[i-lookback] - 1 (from bar lookback). "
        "Bullish signal at bar i when roc crosses above +threshold (roc[i] > threshold and "
        "roc[i-1] <= threshold); bearish when it crosses below -threshold. The bullish signal "
        "also covers a short and the bearish one closes a long."
    )
    params = {
        "lookback": {
            "type": "integer",
            "default": 20,
            "minimum": 1,
            "maximum": 100_000,
            "description": "bars between the two closes compared",
        },
        "threshold": {
            "type": "number",
            "default": 0.0,
            "minimum": 0.0,
            "maximum": 1.0,
            "description": "the rate of change (a fraction) that counts as momentum",
        },
    }

    def min_bars(self, params: dict[str, Any]) -> int:
        return int(params["lookback"]) + 2

    def signals(self, bars: Any, params: dict[str, Any]) -> dict[str, np.ndarray]:
        close = np.asarray(bars.close)
        k, level = int(params["lookback"]), float(params["threshold"])
        roc = np.full(len(close), np.nan)
        roc[k:] = close[k:] / close[:-k] - 1.0
        up = roc > level
        down = roc < -level
        bull = np.zeros(len(close), dtype=bool)
        bear = np.zeros(len(close), dtype=bool)
        bull[k + 1 :] = up[k + 1 :] & ~up[k:-1]
        bear[k + 1 :] = down[k + 1 :] & ~down[k:-1]
        return {"entries": bull, "exits": bear, "short_entries": bear, "short_exits": bull}
