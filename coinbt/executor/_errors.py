"""Errors of the executors beyond ``JobError`` (they import no engine, so the actors can use them).

They belong next to ``JobError`` in ``coinbt/executor/base.py``; they live here until that module
is next edited.
"""

from __future__ import annotations

from coinbt.errors import CoinbtError
from coinbt.executor.base import JobError

__all__ = ("ExecutorUnavailableError", "JobLostError")


class JobLostError(JobError):
    """The worker running the job went away (its process was killed, its machine died, the
    scheduler lost it). The job itself did not fail: the service re-queues the task like one
    interrupted by a restart (attempt + 1, up to ``max_attempts``)."""

    code = "worker_lost"

    def __init__(self, message: str) -> None:
        super().__init__("worker_lost", message)


class ExecutorUnavailableError(CoinbtError):
    """The executor cannot be reached or started (a Dask scheduler that does not answer)."""

    code = "executor_unavailable"
