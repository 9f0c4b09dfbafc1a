"""The read-model folds: status and positions, on hand-made histories and on a real engine run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coinbt import engine
from coinbt.events import Completed, Filled, Queued, StoredEvent, TaskEvent
from coinbt.projections.positions import PositionView, apply_fill, mark
from coinbt.projections.status import TaskView, apply_status
from tests.factories import cancelled, completed, failed, queued, spec, started

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def history(*events: TaskEvent, task_id: str = "t") -> list[StoredEvent]:
    return [
        StoredEvent(
            position=n + 10, stream_id=task_id, version=n + 1, recorded_at=T0, event=e, hash="00"
        )
        for n, e in enumerate(events)
    ]


def fold(*events: TaskEvent) -> TaskView:
    view: TaskView | None = None
    for stored in history(*events):
        view = apply_status(view, stored)
    assert view is not None
    return view


def fill(side: str, qty: float, price: float, fee: float) -> Filled:
    return Filled(bar=1, ts=1, side=side, qty=qty, price=price, fee=fee, symbol="X")  # type: ignore[arg-type]


def test_status_through_a_completed_run() -> None:
    view = fold(queued(), started(), fill("buy", 1, 100, 0.1), completed())
    assert view.status == "completed"
    assert view.progress == 1.0
    assert view.num_fills == 1
    assert view.seq == 10
    assert view.version == 4
    assert view.result is not None
    assert view.result["metrics"]["total_return"] == 0.1
    assert view.to_builtins()["finished_at"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("events", "status", "error"),
    [
        pytest.param([queued()], "queued", None, id="queued"),
        pytest.param([queued(), started()], "running", None, id="running"),
        pytest.param([queued(), started(), failed()], "failed", "boom", id="failed"),
        pytest.param([queued(), cancelled()], "cancelled", None, id="cancelled"),
        pytest.param([queued(), started(), queued(attempt=2)], "queued", None, id="requeued"),
    ],
)
def test_status_of_each_state(events: list[TaskEvent], status: str, error: str | None) -> None:
    view = fold(*events)
    assert view.status == status
    assert view.error == error
    assert view.to_builtins()["status"] == status


def test_requeue_resets_the_run() -> None:
    view = fold(queued(), started(), Queued(spec=spec(), attempt=2))
    assert view.attempt == 2
    assert view.started_at is None


def test_a_stream_must_start_with_queued() -> None:
    with pytest.raises(ValueError, match="starts with Started"):
        apply_status(None, history(started())[0])


def test_positions_round_trip_and_mark() -> None:
    pos: PositionView | None = None
    pos = apply_fill(pos, "t", fill("buy", 2, 100, 0.2))
    assert pos.is_open
    assert pos.cost_basis == pytest.approx(200.2)
    pos = apply_fill(pos, "t", fill("sell", 2, 110, 0.22))
    assert not pos.is_open
    assert pos.realized_pnl == pytest.approx(220 - 0.22 - 200.2)
    assert pos.fees == pytest.approx(0.42)
    pos = apply_fill(pos, "t", fill("buy", 1, 90, 0.09))
    assert pos.avg_entry_price == 90
    marked = mark(pos, Completed(metrics={}, result_digest="", symbol="X", last_close=95.0))
    assert marked.unrealized_pnl == pytest.approx(95 - 90.09)
    assert marked.to_builtins()["status"] == "open"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_positions_add_up_to_the_engines_final_equity(seed: int) -> None:
    bars = engine.synthetic(3000, seed=seed)
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), bars)
    pos: PositionView | None = None
    for f in result.fills:
        pos = apply_fill(pos, "t", fill(f.side, f.qty, f.price, f.fee))
    assert pos is not None
    pos = mark(
        pos, Completed(metrics={}, result_digest="", symbol="X", last_close=result.last_close)
    )
    assert 10_000 + pos.realized_pnl + pos.unrealized_pnl == pytest.approx(
        result.final_equity, rel=1e-9
    )
    assert pos.fees == pytest.approx(result.total_fees, rel=1e-9)
