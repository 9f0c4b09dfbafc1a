"""The positions read model: per task and symbol, folded from ``Filled`` (and marked at the last
close by ``Completed``).

Definitions (long-only, all-in sizing; every amount in the quote currency):

- ``qty``: units held. ``avg_entry_price``: volume-weighted price of the buys of the current (or,
  once closed, the last) position, fees excluded.
- ``cost_basis``: what the units held cost, buy fees included (``qty * price + fee`` per buy; a sell
  removes the sold fraction).
- ``realized_pnl``: sum over sells of ``qty * price - fee - cost basis of the units sold``, so fees
  on both sides are in it.
- ``unrealized_pnl``: ``qty * last_close - cost_basis`` (0 when closed), marked at the last close of
  the data when the run completes.
- ``fees``: every fee paid on this symbol. ``is_open``: ``qty > 0``.

So ``initial cash + realized_pnl + unrealized_pnl`` is the run's final equity.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coinbt.events import Completed, Filled

__all__ = ("PositionView", "apply_fill", "mark")


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
    fills: int = 0

    @property
    def is_open(self) -> bool:
        return self.qty > 0

    def to_builtins(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "avg_entry_price": self.avg_entry_price,
            "cost_basis": self.cost_basis,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "fees": self.fees,
            "status": "open" if self.is_open else "closed",
            "last_price": self.last_price,
            "fills": self.fills,
        }


def apply_fill(position: PositionView | None, task_id: str, fill: Filled) -> PositionView:
    """The position after one fill."""
    if position is None:
        position = PositionView(task_id=task_id, symbol=fill.symbol)
    replace = msgspec.structs.replace
    if fill.side == "buy":
        new_qty = position.qty + fill.qty
        held = position.qty if position.qty > 0 else 0.0
        avg = (position.avg_entry_price * held + fill.price * fill.qty) / new_qty
        return replace(
            position,
            qty=new_qty,
            avg_entry_price=avg,
            cost_basis=position.cost_basis + fill.qty * fill.price + fill.fee,
            fees=position.fees + fill.fee,
            last_price=fill.price,
            fills=position.fills + 1,
        )
    sold = min(fill.qty, position.qty)
    fraction = sold / position.qty if position.qty > 0 else 1.0
    basis_sold = position.cost_basis * fraction
    remaining = position.qty - sold
    return replace(
        position,
        qty=remaining if remaining > 0 else 0.0,
        cost_basis=position.cost_basis - basis_sold if remaining > 0 else 0.0,
        realized_pnl=position.realized_pnl + fill.qty * fill.price - fill.fee - basis_sold,
        fees=position.fees + fill.fee,
        last_price=fill.price,
        fills=position.fills + 1,
    )


def mark(position: PositionView, completed: Completed) -> PositionView:
    """Mark an open position at the run's last close."""
    unrealized = (
        position.qty * completed.last_close - position.cost_basis if position.is_open else 0.0
    )
    return msgspec.structs.replace(
        position, unrealized_pnl=unrealized, last_price=completed.last_close
    )
