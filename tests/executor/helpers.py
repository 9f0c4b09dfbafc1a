"""Jobs and process checks shared by the executor tests."""

from __future__ import annotations

import os

from coinbt.events import SyntheticSpec
from coinbt.executor.base import Job

LONG = 10_000_000  # bars: seconds just to generate the data, so only ever cancelled or killed


def job(out_dir: str, bars: int, *, task_id: str = "t1", seed: int = 1) -> Job:
    """An sma_cross backtest on synthetic bars (10M bars: seconds just to generate the data)."""
    return Job(
        task_id=task_id,
        attempt=1,
        strategy="sma_cross",
        params={"fast": 10, "slow": 30},
        cash=10_000.0,
        fee_bps=10.0,
        slippage_bps=0.0,
        fill="next_open",
        symbol="SYNTH",
        out_dir=out_dir,
        synthetic=SyntheticSpec(bars=bars, seed=seed),
    )


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a reaped process does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
