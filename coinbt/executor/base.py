"""The executor interface: where a backtest's CPU work runs (worker processes by default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from coinbt.errors import CoinbtError
from coinbt.events import ParamValue, PositionSummary, SyntheticSpec

__all__ = ("BatchExecutor", "Executor", "Job", "JobError", "JobResult", "ProducedArtifact")


class Job(msgspec.Struct, frozen=True):
    """Everything a worker process needs to run one backtest (msgpack-encoded over a pipe)."""

    task_id: str
    attempt: int
    strategy: str
    params: dict[str, ParamValue]
    cash: float
    fee_bps: float
    slippage_bps: float
    fill: str
    symbol: str
    out_dir: str  # the run writes its artifact file as <out_dir>-result.npz
    synthetic: SyntheticSpec | None = None
    dataset_path: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    rules: dict[str, str] | None = None  # with strategy "rules": entry, exit[, short_*]
    plugin_sha256: str | None = None  # a plugin's module as recorded in Queued: checked on run
    direction: str = "long"
    sl_stop: float | None = None
    tp_stop: float | None = None
    sl_trail: bool = False
    size: float | None = None
    size_type: str = "all"
    datasets: list[tuple[str, str]] | None = None  # a portfolio of datasets: (symbol, file)


class ProducedArtifact(msgspec.Struct, frozen=True):
    path: str
    sha256: str
    size: int


class JobResult(msgspec.Struct, frozen=True):
    """A finished run: its per-asset positions, summary and artifact files (a backtest's one
    ``result``: its equity, fills and trades, coinbt.engine.columns; a sweep's several)."""

    metrics: dict[str, float | int | None]
    result_digest: str
    final_equity: float
    last_close: float
    bars: int
    artifacts: dict[str, ProducedArtifact]
    positions: list[PositionSummary] = []  # none for a sweep
    num_fills: int = 0


class JobError(CoinbtError):
    """The run raised. ``error_type`` is the exception's class (or coinbt error code)."""

    code = "run_failed"

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(message)


class Executor(Protocol):
    """Runs jobs off the event loop. Cancelling the caller of :meth:`run` stops the job."""

    async def run(self, job: Job, on_progress: Callable[[float], Any]) -> JobResult:
        """Run ``job``; ``on_progress(fraction)`` is called from the event loop as it advances.

        Raises ``JobError`` if the run raised. If the calling task is cancelled (a user's cancel,
        a timeout), the work is stopped before this returns — for the process executor, the
        process running it is killed and replaced.
        """
        ...

    def running_pids(self) -> dict[str, int]:
        """Task id -> process id of the jobs running now (empty where processes do not apply)."""
        ...

    def prepare_close(self) -> None:
        """The service is stopping: don't replace processes that stop from now on."""
        ...

    @property
    def unavailable(self) -> str | None:
        """Why no job can run now (a lost Dask scheduler), or None if jobs can run."""
        ...

    async def wait_available(self) -> None:
        """Return once jobs can run (at once for an executor that is always available)."""
        ...


@runtime_checkable
class BatchExecutor(Protocol):
    """An executor that can also run many small jobs in one round trip (the local processes):
    a worker hands it a claim of small tasks at once instead of one job at a time."""

    async def run_batch(self, jobs: Sequence[Job]) -> list[JobResult | JobError]:
        """Run ``jobs`` in order on one worker; per job its result or its ``JobError``.
        Cancelling the caller stops them all; ``JobError`` if the worker itself failed."""
        ...
