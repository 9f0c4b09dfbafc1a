"""The API's response shapes as msgspec Structs: the source of /openapi.json's schemas.

Requests are decoded with the domain types themselves (``coinbt.events.TaskSpec``); responses are
built as plain builtins that match these Structs (a test decodes real responses with them).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from coinbt.events import TaskSpec
from coinbt.lifecycle import Status

__all__ = (
    "ArtifactOut",
    "ArtifactsOut",
    "DatasetOut",
    "DatasetsOut",
    "EquityOut",
    "ErrorBody",
    "ErrorOut",
    "EventOut",
    "EventPage",
    "FillsOut",
    "FunctionOut",
    "FunctionsOut",
    "HealthOut",
    "PositionOut",
    "PositionsOut",
    "RuleErrorOut",
    "RulesCheckOut",
    "StrategiesOut",
    "StrategyOut",
    "TaskOut",
    "TaskPage",
    "TradesOut",
)


class TaskOut(msgspec.Struct):
    task_id: str
    status: Status
    attempt: int
    progress: float
    error: str | None
    error_type: str | None
    reason: str | None
    spec: TaskSpec
    result: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    idempotency_key: str | None
    num_fills: int


class TaskPage(msgspec.Struct):
    tasks: list[TaskOut]
    next_cursor: str | None


class EventOut(msgspec.Struct):
    position: int
    stream_id: str
    version: int
    type: Literal["Queued", "Started", "Filled", "Completed", "Failed", "Cancelled"]
    recorded_at: str
    data: dict[str, Any]
    hash: str


class EventPage(msgspec.Struct):
    events: list[EventOut]
    next_after: int | None
    total: int | None = None  # the task's events so far (its stream's version), task pages only


class PositionOut(msgspec.Struct):
    """One asset's position at the end of the run: ``qty`` negative when short;
    ``realized_pnl`` is net of fees; ``unrealized_pnl`` marked at the last close; ``trades`` counts
    the positions opened (a reversal opens one)."""

    symbol: str
    side: Literal["long", "short", "flat"]
    qty: float
    avg_entry_price: float
    cost_basis: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    status: Literal["open", "closed"]
    last_price: float | None
    trades: int


class PositionsOut(msgspec.Struct):
    task_id: str
    positions: list[PositionOut]


class FillOut(msgspec.Struct):
    """``position`` (the Filled event's global position) only on tasks of logs written before
    fills became an artifact."""

    bar: int
    ts: int
    side: Literal["buy", "sell"]
    qty: float
    price: float
    fee: float
    reason: Literal["signal", "stop_loss", "take_profit", "trailing_stop"]
    symbol: str
    position: int | msgspec.UnsetType = msgspec.UNSET


class FillsOut(msgspec.Struct):
    task_id: str
    total: int
    offset: int
    fills: list[FillOut]
    next_offset: int | None


class TradeOut(msgspec.Struct):
    """One round trip, flat to flat (a reversal ends one and opens the next on the same bar); an
    open trade has ``exit_bar``, ``exit_ts`` and ``duration_bars`` null, ``exit_reason`` "open"
    and ``exit_price`` the last close it is marked at. ``pnl`` is net of every fee it paid,
    ``return`` is ``pnl`` over the most cash it committed."""

    symbol: str
    side: Literal["long", "short"]
    entry_bar: int
    entry_ts: int
    entry_price: float
    exit_bar: int | None
    exit_ts: int | None
    exit_price: float
    qty: float
    pnl: float
    fees: float
    duration_bars: int | None
    exit_reason: Literal["signal", "stop_loss", "take_profit", "trailing_stop", "open"]
    return_: float = msgspec.field(name="return")


class TradesOut(msgspec.Struct):
    task_id: str
    total: int
    offset: int
    trades: list[TradeOut]
    next_offset: int | None


class EquityOut(msgspec.Struct):
    task_id: str
    total_points: int
    ts: list[int]
    equity: list[float]
    drawdown: list[float]


class ArtifactOut(msgspec.Struct):
    """Where one artifact is, or how its upload is going (``pending`` is retried with backoff;
    ``failed`` means it can never be stored)."""

    name: str
    key: str
    sha256: str
    size: int
    state: Literal["pending", "stored", "failed"]
    location: str | None
    attempts: int
    last_error: str | None
    updated_at: str


class ArtifactsOut(msgspec.Struct):
    task_id: str
    artifacts: list[ArtifactOut]


class StrategyOut(msgspec.Struct):
    name: str
    description: str
    params: dict[str, Any]
    source: Literal["builtin", "plugin", "rules"] = "builtin"
    provenance: dict[str, Any] | None = None


class FunctionOut(msgspec.Struct):
    """One function rules may call: its arguments with defaults and ranges (``maximum`` "bars"
    for windows), the bar columns it reads, and its output."""

    name: str
    signature: str
    source: Literal["coinbt", "talib"]
    inputs: list[str]
    params: list[dict[str, Any]]
    outputs: list[str]
    returns: str
    description: str


class FunctionsOut(msgspec.Struct):
    functions: list[FunctionOut]
    columns: list[str]
    limits: dict[str, int]


class RuleErrorOut(msgspec.Struct):
    field: str
    message: str
    column: int | None = None


class RulesCheckOut(msgspec.Struct):
    valid: bool
    errors: list[RuleErrorOut]
    params: dict[str, Any] | None


class StrategiesOut(msgspec.Struct):
    strategies: list[StrategyOut]


class GapsOut(msgspec.Struct):
    count: int  # spacings longer than the interval
    missing: int  # bars missing in all of them
    largest_ms: int
    at_ms: int  # the bar before the largest gap


class SourceFileOut(msgspec.Struct):
    file: str
    sha256: str


class DatasetOut(msgspec.Struct):
    name: str
    symbol: str
    rows: int
    start: str
    end: str
    interval_ms: int
    sha256: str
    source: str
    created_at: str
    version: int = 1
    gaps: GapsOut | None = None
    provenance: list[SourceFileOut] = []


class SkippedDatasetOut(msgspec.Struct):
    name: str
    reason: str


class DatasetsOut(msgspec.Struct):
    datasets: list[DatasetOut]
    synthetic: dict[str, Any]
    skipped: list[SkippedDatasetOut] = []  # stored records that cannot be shown (damaged)


class HealthOut(msgspec.Struct):
    status: Literal["ok", "degraded"]  # degraded: no backtest can start (the executor is down)
    version: str
    last_position: int
    projected_position: int
    workers: int
    instance: str | None = None  # this process's instance id on a shared (PostgreSQL) database
    executor: Literal["ok", "unavailable"] = "ok"  # unavailable: e.g. the Dask scheduler is lost


class ErrorBody(msgspec.Struct):
    code: str
    message: str
    details: Any = None


class ErrorOut(msgspec.Struct):
    error: ErrorBody
