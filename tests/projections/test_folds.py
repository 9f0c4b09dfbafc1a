"""The read-model folds: status and positions, on hand-made histories and on a real engine run."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinbt import engine
from coinbt.engine.ledger import ledger
from coinbt.engine.result import Fills
from coinbt.events import Completed, Filled, PositionSummary, Queued, StoredEvent, TaskEvent
from coinbt.projections.fold import fold_page
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


def test_a_sell_larger_than_the_holding_opens_a_short_instead_of_booking_profit() -> None:
    pos = apply_fill(None, "t", fill("buy", 1, 100, 0.1))
    pos = apply_fill(pos, "t", fill("sell", 3, 110, 0.33))
    # One unit closed (its share of the fee paid), two sold short.
    assert pos.qty == -2
    assert pos.side == "short"
    assert pos.realized_pnl == pytest.approx(110 - 0.11 - 100.1)
    assert pos.avg_entry_price == 110
    assert pos.trades == 2
    marked = mark(pos, Completed(metrics={}, result_digest="", symbol="X", last_close=105.0))
    assert marked.unrealized_pnl == pytest.approx(2 * (110 - 105) - 0.22)
    assert marked.to_builtins()["status"] == "open"


_fill_rows = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.floats(0.01, 10, allow_nan=False),
        st.floats(1, 1000, allow_nan=False),
        st.floats(0, 1, allow_nan=False),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_fill_rows, st.floats(1, 1000, allow_nan=False))
def test_an_old_logs_fills_fold_to_the_ledgers_positions(
    rows: list[tuple[int, float, float, float]], last_close: float
) -> None:
    """Long, short, reversals, partial closes: Filled events folded one by one give exactly what
    the engine's ledger (what new runs record in Completed) gives for the same fills."""
    n = len(rows)
    fills = Fills(
        bar=np.arange(n, dtype=np.int64),
        ts=np.arange(n, dtype=np.int64),
        side=np.array([r[0] for r in rows], dtype=np.int8),
        qty=np.array([r[1] for r in rows], dtype=np.float64),
        price=np.array([r[2] for r in rows], dtype=np.float64),
        fee=np.array([r[3] for r in rows], dtype=np.float64),
        reason=np.zeros(n, dtype=np.int8),
        asset=np.zeros(n, dtype=np.int16),
    )
    [expected] = ledger(fills, ("X",), (last_close,)).positions
    pos: PositionView | None = None
    for side, qty, price, fee in rows:
        pos = apply_fill(pos, "t", fill("buy" if side > 0 else "sell", qty, price, fee))
    if pos is None:
        assert expected.trades == 0
        return
    pos = mark(pos, Completed(metrics={}, result_digest="", symbol="X", last_close=last_close))
    assert (pos.qty, pos.avg_entry_price, pos.realized_pnl, pos.unrealized_pnl, pos.fees) == (
        expected.qty,
        expected.avg_entry_price,
        expected.realized_pnl,
        expected.unrealized_pnl,
        expected.fees,
    )
    assert pos.trades == expected.trades


def _summary(p: engine.PositionSummary, symbol: str) -> PositionSummary:
    return PositionSummary(
        symbol=symbol,
        qty=p.qty,
        avg_entry_price=p.avg_entry_price,
        realized_pnl=p.realized_pnl,
        unrealized_pnl=p.unrealized_pnl,
        fees=p.fees,
        trades=p.trades,
        last_close=p.last_close,
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_an_old_log_and_a_new_one_give_the_same_positions_and_counts(seed: int) -> None:
    """The same run as an old log (Filled events, then Completed) and as a new one (one
    Completed with the positions): equal views, status included."""
    bars = engine.synthetic(1000, seed=seed)
    result = engine.run(engine.BacktestSpec("sma_cross", {"fast": 5, "slow": 20}), bars)
    old_events: list[TaskEvent] = [
        Filled(bar=f.bar, ts=f.ts, side=f.side, qty=f.qty, price=f.price, fee=f.fee, symbol="X")  # type: ignore[arg-type]
        for f in result.fills
    ]
    summary = _summary(engine.ledger_of(result).positions[0], "X")
    base = {"metrics": {}, "result_digest": "", "symbol": "X", "last_close": result.last_close}
    old = history(queued(), started(), *old_events, Completed(**base))  # type: ignore[arg-type]
    new = history(
        queued(),
        started(),
        Completed(**base, positions=[summary], num_fills=len(result.fills)),  # type: ignore[arg-type]
    )
    old_changes = fold_page(old, 0, lambda _: None, lambda _: None)
    new_changes = fold_page(new, 0, lambda _: None, lambda _: None)
    [old_pos] = old_changes.positions.values()
    [new_pos] = new_changes.positions.values()
    old_out, new_out = old_pos.to_builtins(), new_pos.to_builtins()
    basis = new_out.pop("cost_basis")  # derived back from the summary: equal to rounding
    assert basis == pytest.approx(old_out.pop("cost_basis"), rel=1e-12, abs=1e-9)
    assert new_out == old_out
    old_view, new_view = old_changes.tasks["t"], new_changes.tasks["t"]
    assert old_view.num_fills == new_view.num_fills == len(result.fills)
    assert (old_view.fills_logged, new_view.fills_logged) == (True, False)
    assert new_view.result is not None
    assert new_view.result["symbols"] == ["X"]


def test_an_asset_that_never_traded_has_no_position() -> None:
    idle = PositionSummary("Y", 0.0, 0.0, 0.0, 0.0, 0.0, 0, 5.0)
    traded = PositionSummary("X", -2.0, 110.0, 9.79, 9.78, 0.55, 2, 105.0)
    completed_event = Completed(metrics={}, result_digest="", positions=[traded, idle])
    changes = fold_page(history(queued(), started(), completed_event), 0, _none, _none)
    assert list(changes.positions) == [("t", "X")]
    view = changes.positions[("t", "X")]
    assert (view.side, view.qty, view.trades, view.last_price) == ("short", -2.0, 2, 105.0)
    assert view.cost_basis == pytest.approx(-2 * 105 - 9.78)


def _none(_: object) -> None:
    return None
