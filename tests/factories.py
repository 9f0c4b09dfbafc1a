"""Small builders of valid domain values for tests."""

from __future__ import annotations

from coinbt.events import (
    Cancelled,
    Completed,
    DataSpec,
    Failed,
    Filled,
    Queued,
    Started,
    SyntheticSpec,
    TaskSpec,
)


def spec(bars: int = 300, seed: int = 1, **fields: object) -> TaskSpec:
    params = fields.pop("params", {"fast": 5, "slow": 20})
    return TaskSpec(
        strategy=str(fields.pop("strategy", "sma_cross")),
        params=params,  # type: ignore[arg-type]
        data=DataSpec(synthetic=SyntheticSpec(bars=bars, seed=seed)),
        **fields,  # type: ignore[arg-type]
    )


def queued(attempt: int = 1) -> Queued:
    return Queued(spec=spec(), attempt=attempt)


def started(attempt: int = 1) -> Started:
    return Started(worker_id="w-1", attempt=attempt)


def filled(bar: int = 1, side: str = "buy") -> Filled:
    return Filled(
        bar=bar,
        ts=1_700_000_000_000 + bar,
        side=side,
        qty=1.5,
        price=100.0,
        fee=0.15,
        symbol="SYNTH",
    )  # type: ignore[arg-type]


def completed() -> Completed:
    return Completed(metrics={"total_return": 0.1, "sharpe": None}, result_digest="ab" * 32)


def failed() -> Failed:
    return Failed(error="boom", error_type="RuntimeError")


def cancelled() -> Cancelled:
    return Cancelled(reason="user asked")
