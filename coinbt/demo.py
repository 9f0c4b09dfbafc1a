"""Demo data for a fresh install: a few backtests on synthetic data, submitted on an empty log.

One year of hourly synthetic bars (seed 21: a choppy year that ends up, so the strategies differ):
the six builtins long and all-in, then one of each newer kind of run (a short with a trailing
stop, stop-and-reverse with a take profit, a rules strategy, a two-asset portfolio) and a small
sweep, so every page of the dashboard has something to show.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coinbt.events import DataSpec, ParamValue, RuleSet, SyntheticSpec, TaskSpec
from coinbt.events.spec import SweepOptions
from coinbt.runtime import System

__all__ = ("DEMO_SPECS", "DEMO_SWEEP", "submit_demo")


def _spec(
    strategy: str,
    params: dict[str, ParamValue],
    seed: int = 21,
    bars: int = 8760,
    symbols: int = 1,
    **options: Any,
) -> TaskSpec:
    return TaskSpec(
        strategy=strategy,
        params=params,
        data=DataSpec(
            synthetic=SyntheticSpec(bars=bars, seed=seed, interval="1h", symbols=symbols)
        ),
        fee_bps=10,
        **options,
    )


DEMO_SPECS = (
    _spec("sma_cross", {"fast": 24, "slow": 120}),
    _spec("ema_cross", {"fast": 12, "slow": 48}),
    _spec("rsi_reversion", {"period": 14, "lower": 30, "upper": 70}),
    _spec("bollinger_breakout", {"window": 48, "k": 2.0}),
    _spec("donchian_breakout", {"window": 96, "exit_window": 48}),
    _spec("buy_and_hold", {}),
    _spec("sma_cross", {"fast": 24, "slow": 120}, direction="short", sl_stop=0.05, sl_trail=True),
    _spec("ema_cross", {"fast": 12, "slow": 48}, direction="both", tp_stop=0.08),
    _spec(
        "rules",
        {"fast": 24, "slow": 96},
        rules=RuleSet(
            entry="cross_above(ema(close, fast), ema(close, slow)) and rsi(close, 14) < 70",
            exit="cross_below(ema(close, fast), ema(close, slow))",
        ),
    ),
    _spec(
        "sma_cross",
        {"fast": 24, "slow": 120},
        symbols=2,
        size=0.5,
        size_type="target_percent",
    ),
)

DEMO_SWEEP = msgspec.structs.replace(
    _spec("sma_cross", {}),
    sweep=SweepOptions(grid={"fast": [12, 24, 48], "slow": [96, 168, 336]}),
)


async def submit_demo(system: System) -> int:
    """Submit the demo backtests if the log is empty; returns how many were submitted."""
    if await system.store.last_position() > 0:
        return 0
    for n, spec in enumerate(DEMO_SPECS):
        await system.submit(spec, idempotency_key=f"demo-{n}")
    await system.submit_sweep(DEMO_SWEEP)
    return len(DEMO_SPECS) + 1
