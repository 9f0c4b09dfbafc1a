"""What the dashboard's task page draws beyond the equity curve: the round trips
(``GET /backtests/{id}/trades``), each asset's prices with the buy-and-hold benchmark
(``/prices``), and the benchmark's metrics, monthly returns, rolling Sharpe and trade statistics
(``/analysis``). All computed from the task's artifacts and the bars it ran on."""

from __future__ import annotations

import math
from typing import Any

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from coinbt.api._downsample import downsample
from coinbt.api._params import int_param, optional_int_param, task_id_param
from coinbt.api._results import load_assets, load_outcome
from coinbt.api.errors import json_response
from coinbt.engine import Bars
from coinbt.errors import InvalidTransitionError
from coinbt.lifecycle import Status
from coinbt.report import analysis
from coinbt.runtime import System

__all__ = ("Analysis",)


def _finite(values: Any) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


class Analysis:
    def __init__(self, system: System) -> None:
        self.system = system

    async def trades(self, request: Request) -> Response:
        """The round trips of a completed task (``Trades.to_dicts`` with times), in the order
        they opened, read from its trades artifact: every one, or ``limit`` from ``offset``."""
        task_id = task_id_param(request)
        offset = int_param(request, "offset", 0)
        limit = optional_int_param(request, "limit", minimum=1, maximum=1000)
        view = await self.system.task(task_id)
        if view.status is not Status.COMPLETED:
            raise InvalidTransitionError(task_id, view.status, "export")
        page = await self.system.trades(task_id, offset=offset, limit=limit)
        end = offset + len(page.rows)
        return json_response(
            {
                "task_id": task_id,
                "total": page.total,
                "offset": offset,
                "trades": page.rows,
                "next_offset": end if end < page.total else None,
            }
        )

    async def prices(self, request: Request) -> Response:
        """Each asset's closes (downsampled to ``points`` keeping extremes) and the buy-and-hold
        equity at the same bars."""
        task_id = task_id_param(request)
        points = int_param(request, "points", 1000, minimum=0, maximum=100_000)
        outcome = await load_outcome(self.system, task_id)
        assets = await load_assets(self.system, outcome.view)
        spec = outcome.view.spec

        def one(symbol: str, bars: Bars) -> dict[str, Any]:
            bench = analysis.benchmark(bars.close, spec.cash, spec.fee_bps / 10_000, 0)
            keep = downsample(len(bars), points, bars.close)
            return {
                "symbol": symbol,
                "ts": bars.ts[keep].tolist(),
                "close": bars.close[keep].tolist(),
                "benchmark": bench.equity[keep].tolist(),
            }

        def shape() -> dict[str, Any]:
            first = assets[0][1]
            closes = [bars.close for _, bars in assets]
            bench = analysis.benchmark(closes, spec.cash, spec.fee_bps / 10_000, 0)
            keep = downsample(len(first), points, bench.equity)
            return {
                "task_id": task_id,
                "total_points": len(first),
                "assets": [one(symbol, bars) for symbol, bars in assets],
                # every asset bought with an equal share of the cash (one asset: all of it)
                "benchmark": {"ts": first.ts[keep].tolist(), "equity": bench.equity[keep].tolist()},
            }

        return json_response(await anyio.to_thread.run_sync(shape))

    async def analysis(self, request: Request) -> Response:
        """Buy-and-hold metrics, monthly returns, rolling Sharpe (downsampled to ``points``) and
        trade statistics."""
        task_id = task_id_param(request)
        points = int_param(request, "points", 1000, minimum=0, maximum=100_000)
        outcome = await load_outcome(self.system, task_id)
        assets = await load_assets(self.system, outcome.view)
        spec = outcome.view.spec

        def shape() -> dict[str, Any]:
            interval = assets[0][1].interval_ms
            closes = [bars.close for _, bars in assets]
            bench = analysis.benchmark(closes, spec.cash, spec.fee_bps / 10_000, interval)
            monthly = analysis.monthly_returns(outcome.ts, outcome.equity, spec.cash)
            window = analysis.rolling_window(interval, len(outcome.equity))
            sharpe = analysis.rolling_sharpe(outcome.equity, window, interval)
            keep = downsample(len(sharpe), points, np.nan_to_num(sharpe))
            return {
                "task_id": task_id,
                "benchmark": {"metrics": bench.metrics},
                "monthly": {
                    "years": list(monthly.years),
                    "returns": [list(row) for row in monthly.returns],
                    "yearly": list(monthly.yearly),
                },
                "rolling_sharpe": {
                    "window": window,
                    "days": window * interval / 86_400_000 if interval else None,
                    "ts": outcome.ts[keep].tolist(),
                    "values": _finite(sharpe[keep]),
                },
                "trade_stats": analysis.trade_stats(outcome.trades(), interval),
            }

        return json_response(await anyio.to_thread.run_sync(shape))
