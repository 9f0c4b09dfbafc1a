"""The positions read model: per task and symbol, folded from the position summaries in
``Completed`` (DESIGN section 4). Logs written before fills became an artifact hold ``Filled``
events instead; those are folded here by the rule of ``coinbt.engine.ledger`` (one signed rule for
long, short, reversals and partial closes), so an old log and a new one give the same view.

Definitions (every amount in the quote currency; ``coinbt.engine.ledger`` has the details):

- ``qty``: units held, negative when short. ``avg_entry_price``: volume-weighted fill price of the
  open position's entries, fees excluded (0 when flat).
- ``cost_basis``: what opening the held position cost, fees included (minus the net proceeds
  when short); 0 when flat.
- ``realized_pnl``: net of fees (the fees of both the opening and the closing fills are in it).
- ``unrealized_pnl``: ``qty * last_close - cost_basis``, marked at the last close of the data.
- ``fees``: every fee paid on this symbol. ``trades``: positions opened (a reversal opens one).

So ``initial cash + sum(realized_pnl) + sum(unrealized_pnl)`` is the run's final equity.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coinbt.events import Completed, Filled, PositionSummary

__all__ = ("PositionView", "apply_fill", "from_summary", "mark")


class PositionView(msgspec.Struct, frozen=True, gc=False):
    task_id: str
    symbol: str
    qty: float = 0.0
    avg_entry_price: float = 0.0
    cost_basis: float = 0.0
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float | None = None
    trades: int = 0
    # Only while folding Filled events: the open position's entries (quantity and value).
    entry_qty: float = 0.0
    entry_value: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.qty != 0.0

    @property
    def side(self) -> str:
        return "long" if self.qty > 0 else "short" if self.qty < 0 else "flat"

    def to_builtins(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "avg_entry_price": self.avg_entry_price,
            "cost_basis": self.cost_basis,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "fees": self.fees,
            "status": "open" if self.is_open else "closed",
            "last_price": self.last_price,
            "trades": self.trades,
        }


def from_summary(task_id: str, summary: PositionSummary) -> PositionView:
    """The view of one asset's position as a run's ``Completed`` summarizes it."""
    qty = summary.qty
    basis = qty * summary.last_close - summary.unrealized_pnl if qty != 0.0 else 0.0
    return PositionView(
        task_id=task_id,
        symbol=summary.symbol,
        qty=qty,
        avg_entry_price=summary.avg_entry_price,
        cost_basis=basis,
        realized_pnl=summary.realized_pnl,
        unrealized_pnl=summary.unrealized_pnl,
        fees=summary.fees,
        last_price=summary.last_close,
        trades=summary.trades,
    )


def apply_fill(position: PositionView | None, task_id: str, fill: Filled) -> PositionView:
    """The position after one fill of an old log (``coinbt.engine.ledger``'s rule: a fill that
    crosses zero closes the position and opens the other side with the rest, its fee shared in
    proportion)."""
    p = position if position is not None else PositionView(task_id=task_id, symbol=fill.symbol)
    sign = 1.0 if fill.side == "buy" else -1.0
    q, basis, realized, trades = p.qty, p.cost_basis, p.realized_pnl, p.trades
    entry_qty, entry_value = p.entry_qty, p.entry_value
    size = fill.qty
    closing = min(size, abs(q)) if q * sign < 0 else 0.0
    opening = size - closing
    if closing > 0.0:
        released = basis * (closing / abs(q))
        realized += -(sign * closing * fill.price) - fill.fee * (closing / size) - released
        if closing == abs(q):
            q = basis = entry_qty = entry_value = 0.0
        else:
            q += sign * closing
            basis -= released
    if opening > 0.0:
        if q == 0.0:
            trades += 1
        basis += sign * opening * fill.price + fill.fee * (opening / size)
        entry_qty += opening
        entry_value += opening * fill.price
        q += sign * opening
    return msgspec.structs.replace(
        p,
        qty=q,
        avg_entry_price=entry_value / entry_qty if q != 0.0 and entry_qty > 0.0 else 0.0,
        cost_basis=basis,
        realized_pnl=realized,
        fees=p.fees + fill.fee,
        last_price=fill.price,
        trades=trades,
        entry_qty=entry_qty,
        entry_value=entry_value,
    )


def mark(position: PositionView, completed: Completed) -> PositionView:
    """Mark an old log's position at the run's last close."""
    unrealized = (
        position.qty * completed.last_close - position.cost_basis if position.is_open else 0.0
    )
    return msgspec.structs.replace(
        position, unrealized_pnl=unrealized, last_price=completed.last_close
    )
