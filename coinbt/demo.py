"""Demo data for a fresh install: a few backtests on synthetic data, submitted on an empty log.

One year of hourly synthetic bars (seed 21: a choppy year that ends up, so the strategies differ).
"""

from __future__ import annotations

from coinbt.events import DataSpec, ParamValue, SyntheticSpec, TaskSpec
from coinbt.runtime import System

__all__ = ("DEMO_SPECS", "submit_demo")


def _spec(
    strategy: str, params: dict[str, ParamValue], seed: int = 21, bars: int = 8760
) -> TaskSpec:
    return TaskSpec(
        strategy=strategy,
        params=params,
        data=DataSpec(synthetic=SyntheticSpec(bars=bars, seed=seed, interval="1h")),
        fee_bps=10,
    )


DEMO_SPECS = (
    _spec("sma_cross", {"fast": 24, "slow": 120}),
    _spec("ema_cross", {"fast": 12, "slow": 48}),
    _spec("rsi_reversion", {"period": 14, "lower": 30, "upper": 70}),
    _spec("bollinger_breakout", {"window": 48, "k": 2.0}),
    _spec("donchian_breakout", {"window": 96, "exit_window": 48}),
    _spec("buy_and_hold", {}),
)


async def submit_demo(system: System) -> int:
    """Submit the demo backtests if the log is empty; returns how many were submitted."""
    if await system.store.last_position() > 0:
        return 0
    for n, spec in enumerate(DEMO_SPECS):
        await system.submit(spec, idempotency_key=f"demo-{n}")
    return len(DEMO_SPECS)
