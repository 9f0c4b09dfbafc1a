"""The events of a task's stream: frozen msgspec Structs, a tagged union with stable tags.

Structs are ``gc=False``: they never form reference cycles, and untracked objects make replaying
millions of events much cheaper (no garbage-collector passes over them).

Names are past tense and tags equal the names (``type`` in the stored envelope and the API).
Schemas only grow: a new field gets a default. A real break is a new schema number for the type
plus an upcaster registered in ``coinbt.events.codec`` that turns the old payload into the new
one on read.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from coinbt.events.spec import TaskSpec

__all__ = (
    "EVENT_TYPES",
    "TERMINAL_TYPES",
    "ArtifactRef",
    "Cancelled",
    "Completed",
    "Failed",
    "Filled",
    "PositionSummary",
    "Queued",
    "Started",
    "TaskEvent",
    "event_type",
)

MetricValue = float | int | None


class ArtifactRef(msgspec.Struct, frozen=True, gc=False):
    """A logical artifact key and the sha256 of its bytes; where it lives is the store's job."""

    key: str
    sha256: str
    size: int


class Queued(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Queued"):
    """A backtest was accepted, or an interrupted one re-queued (``attempt`` > 1)."""

    spec: TaskSpec
    attempt: int = 1
    idempotency_key: str | None = None


class Started(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Started"):
    """A worker began an attempt."""

    worker_id: str
    attempt: int


class Filled(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Filled"):
    """One fill of a finished run, appended in the same transaction as its ``Completed`` by
    coinbt before fills became a columnar artifact; no longer appended, still read in old logs."""

    bar: int
    ts: int  # epoch milliseconds, UTC
    side: Literal["buy", "sell"]
    qty: float
    price: float
    fee: float
    symbol: str


class PositionSummary(msgspec.Struct, frozen=True, gc=False):
    """One asset's position at the end of a run (``coinbt.engine.ledger`` defines each field):
    quantity (negative when short), average entry price, realized PnL net of fees, unrealized PnL
    at the last close, fees, positions opened.
    """

    symbol: str
    qty: float
    avg_entry_price: float
    realized_pnl: float
    unrealized_pnl: float
    fees: float
    trades: int
    last_close: float


class Completed(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Completed"):
    """The run finished. ``result_digest`` is the sha256 of the canonical result."""

    metrics: dict[str, MetricValue]
    result_digest: str
    artifacts: dict[str, ArtifactRef] = {}
    symbol: str = ""
    last_close: float = 0.0
    final_equity: float = 0.0
    positions: list[PositionSummary] = []  # per asset; empty in logs that hold Filled events
    num_fills: int = 0  # the rows of the fills artifact (0 where Filled events hold them)


class Failed(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Failed"):
    """The run raised, timed out, or was interrupted too often."""

    error: str
    error_type: str


class Cancelled(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="Cancelled"):
    """A user cancelled a queued or running task."""

    reason: str


TaskEvent = Queued | Started | Filled | Completed | Failed | Cancelled

EVENT_TYPES: dict[str, type[TaskEvent]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Queued, Started, Filled, Completed, Failed, Cancelled)
}

TERMINAL_TYPES = frozenset({"Completed", "Failed", "Cancelled"})


def event_type(event: TaskEvent) -> str:
    """The stable type name (the tag) of an event."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
