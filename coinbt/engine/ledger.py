"""Positions and round-trip trades, folded from fills: one rule for long, short and reversals.

Every fill is a signed quantity change ``dq`` (``side * qty``) at a price with a fee. Per asset,
the position keeps a signed *basis* ``B``: what opening it cost, fees included (a buy adds
``dq * price + fee``; a short sale adds ``dq * price + fee`` too, so ``B`` is minus the net
proceeds). A fill that moves the position towards zero closes the fraction ``c / |q|`` of it
(``c`` the closed quantity) and releases that fraction of ``B``; a fill that crosses zero is split
into its closing and opening parts, the fee shared in proportion to the quantities.

- ``realized_pnl`` (net of fees) = sum over closing parts of ``-(dq * price) - fee - released``;
- ``unrealized_pnl`` = ``q * last_close - B``, so the open position's entry fees are in it;
- hence, exactly in real arithmetic, ``cash0 + sum(realized) + sum(unrealized) = final equity``.

A *trade* runs from a flat position to the next flat one (or the end of the data, ``open``); a
reversal ends one trade and starts the next on the same bar. Its ``pnl`` is the realized PnL of
its closing parts minus the fees of its opening parts not yet released, i.e. net of every fee it
paid; ``ret`` is ``pnl`` over the cash it committed (``|B|`` at its largest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.result import REASONS, BacktestResult, Fills

__all__ = ("OPEN", "Ledger", "PositionSummary", "Trades", "ledger", "ledger_of")

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

OPEN = -1
"""``Trades.exit_reason`` of a trade still open at the end of the data."""

SMALL_FILLS = 32
"""Up to this many fills ``ledger`` runs the loop (~30 us for 11 fills against ~70 us for the
array fold, which wins from about 40 fills on)."""


@dataclass(frozen=True, slots=True)
class PositionSummary:
    """One asset's position at the end of a run (quantity negative when short)."""

    symbol: str
    qty: float
    avg_entry_price: float  # volume-weighted fill price of the open position's entries, no fees
    realized_pnl: float  # net of fees
    unrealized_pnl: float  # qty * last_close - basis (the open position's entry fees included)
    fees: float
    trades: int  # positions opened (a reversal opens one)
    last_close: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "qty": self.qty,
            "avg_entry_price": self.avg_entry_price,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "fees": self.fees,
            "trades": self.trades,
            "last_close": self.last_close,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Trades:
    """Round trips, column-wise, in the order they opened. ``side`` is 1 (long) or -1 (short);
    ``exit_bar`` is -1 and ``exit_reason`` is ``OPEN`` (-1) for a trade still open, whose
    ``exit_price`` is the last close it was marked at.
    """

    asset: NDArray[np.int16]
    side: NDArray[np.int8]
    entry_bar: IntArray
    entry_price: FloatArray  # volume-weighted over the trade's opening fills
    exit_bar: IntArray
    exit_price: FloatArray  # volume-weighted over its closing fills
    qty: FloatArray  # the largest absolute quantity held
    pnl: FloatArray  # net of every fee the trade paid
    ret: FloatArray
    fees: FloatArray
    exit_reason: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.entry_bar)

    def to_dicts(
        self, ts: IntArray | None = None, symbols: Sequence[str] = ("",)
    ) -> list[dict[str, Any]]:
        """One dict per trade; with ``ts`` (the bars' epoch ms) also entry and exit times."""
        out: list[dict[str, Any]] = []
        for i in range(len(self)):
            exit_bar = int(self.exit_bar[i])
            reason = int(self.exit_reason[i])
            row: dict[str, Any] = {
                "symbol": symbols[int(self.asset[i])],
                "side": "long" if self.side[i] > 0 else "short",
                "entry_bar": int(self.entry_bar[i]),
                "entry_price": float(self.entry_price[i]),
                "exit_bar": None if exit_bar < 0 else exit_bar,
                "exit_price": float(self.exit_price[i]),
                "qty": float(self.qty[i]),
                "pnl": float(self.pnl[i]),
                "return": float(self.ret[i]),
                "fees": float(self.fees[i]),
                "duration_bars": None if exit_bar < 0 else exit_bar - int(self.entry_bar[i]),
                "exit_reason": "open" if reason < 0 else REASONS[reason],
            }
            if ts is not None:
                row["entry_ts"] = int(ts[row["entry_bar"]])
                row["exit_ts"] = None if exit_bar < 0 else int(ts[exit_bar])
            out.append(row)
        return out


@dataclass(frozen=True, slots=True)
class Ledger:
    positions: tuple[PositionSummary, ...]
    trades: Trades


class _Trade:
    __slots__ = (
        "asset",
        "close_qty",
        "close_value",
        "entry_bar",
        "exit_bar",
        "fees",
        "open_qty",
        "open_value",
        "peak_basis",
        "peak_qty",
        "pnl",
        "reason",
        "side",
    )  # fmt: skip

    def __init__(self, asset: int, side: int, bar: int) -> None:
        self.asset, self.side, self.entry_bar = asset, side, bar
        self.open_qty = self.open_value = self.close_qty = self.close_value = 0.0
        self.peak_qty = self.peak_basis = self.pnl = self.fees = 0.0
        self.exit_bar = -1
        self.reason = OPEN


def ledger(fills: Fills, symbols: Sequence[str], last_closes: Sequence[float]) -> Ledger:
    """Fold ``fills`` (time order; ``fills.asset`` indexes ``symbols``) into per-asset position
    summaries and round-trip trades (see the module doc for the definitions).

    When every fill opens from flat, closes the whole position or reverses it (what the engine
    produces, but for a cover the cash could not pay in full), the fold is done with array
    operations, in the same floating-point operations and order as the loop (equal results);
    up to ``SMALL_FILLS`` fills the loop itself is faster (a tiny task: numpy's per-call cost
    outweighs a few dozen iterations).
    """
    if len(fills) <= SMALL_FILLS:
        return _fold(fills, symbols, last_closes)
    fast = _whole_fills(fills, symbols, last_closes)
    if fast is not None:
        return fast
    return _fold(fills, symbols, last_closes)


def _fold(fills: Fills, symbols: Sequence[str], last_closes: Sequence[float]) -> Ledger:
    n_assets = len(symbols)
    qty = [0.0] * n_assets
    basis = [0.0] * n_assets
    realized = [0.0] * n_assets
    fees = [0.0] * n_assets
    opened = [0] * n_assets
    entry_qty = [0.0] * n_assets
    entry_value = [0.0] * n_assets
    current: list[_Trade | None] = [None] * n_assets
    trades: list[_Trade] = []
    for bar, asset, side, q_fill, price, fee, reason in zip(
        fills.bar.tolist(),
        fills.asset.tolist(),
        fills.side.tolist(),
        fills.qty.tolist(),
        fills.price.tolist(),
        fills.fee.tolist(),
        fills.reason.tolist(),
        strict=True,
    ):
        q = qty[asset]
        dq = side * q_fill
        fees[asset] += fee
        closing = min(abs(dq), abs(q)) if q * dq < 0 else 0.0
        opening = abs(dq) - closing
        if closing > 0.0:
            share = closing / abs(dq)
            c_fee = fee * share
            released = basis[asset] * (closing / abs(q))
            gain = -(side * closing * price) - c_fee - released
            realized[asset] += gain
            basis[asset] -= released
            t = current[asset]
            assert t is not None
            t.pnl += gain
            t.fees += c_fee
            t.close_qty += closing
            t.close_value += closing * price
            if closing == abs(q):  # the whole position closed
                q = 0.0
                basis[asset] = 0.0
                t.exit_bar, t.reason = bar, reason
                current[asset] = None
                entry_qty[asset] = entry_value[asset] = 0.0
            else:
                q += side * closing
        if opening > 0.0:
            o_fee = fee * (opening / abs(dq))
            t = current[asset]
            if t is None:
                t = _Trade(asset, side, bar)
                current[asset] = t
                trades.append(t)
                opened[asset] += 1
            basis[asset] += side * opening * price + o_fee
            t.fees += o_fee
            t.open_qty += opening
            t.open_value += opening * price
            entry_qty[asset] += opening
            entry_value[asset] += opening * price
            q = q + side * opening
            t.peak_qty = max(t.peak_qty, abs(q))
            t.peak_basis = max(t.peak_basis, abs(basis[asset]))
        qty[asset] = q
    positions = []
    for a in range(n_assets):
        close = float(last_closes[a])
        unrealized = qty[a] * close - basis[a] if qty[a] != 0.0 else 0.0
        t = current[a]
        if t is not None:  # an open trade is marked at the last close
            t.pnl += unrealized
        avg = _avg(entry_value[a], entry_qty[a]) if qty[a] != 0.0 else 0.0
        positions.append(
            PositionSummary(
                symbol=symbols[a],
                qty=qty[a],
                avg_entry_price=avg,
                realized_pnl=realized[a],
                unrealized_pnl=unrealized,
                fees=fees[a],
                trades=opened[a],
                last_close=close,
            )
        )
    return Ledger(tuple(positions), _columns(trades, last_closes))


def _avg(value: float, qty: float) -> float:
    return value / qty if qty > 0.0 else 0.0


def _columns(trades: list[_Trade], last_closes: Sequence[float]) -> Trades:
    m = len(trades)
    exit_price = np.empty(m)
    pnl = np.empty(m)
    ret = np.empty(m)
    for i, t in enumerate(trades):
        if t.exit_bar < 0:
            exit_price[i] = float(last_closes[t.asset])
        else:
            exit_price[i] = t.close_value / t.close_qty
        pnl[i] = t.pnl
        ret[i] = t.pnl / t.peak_basis if t.peak_basis > 0.0 else 0.0
    return Trades(
        asset=np.array([t.asset for t in trades], dtype=np.int16),
        side=np.array([t.side for t in trades], dtype=np.int8),
        entry_bar=np.array([t.entry_bar for t in trades], dtype=np.int64),
        entry_price=np.array([t.open_value / t.open_qty for t in trades], dtype=np.float64),
        exit_bar=np.array([t.exit_bar for t in trades], dtype=np.int64),
        exit_price=exit_price,
        qty=np.array([t.peak_qty for t in trades], dtype=np.float64),
        pnl=pnl,
        ret=ret,
        fees=np.array([t.fees for t in trades], dtype=np.float64),
        exit_reason=np.array([t.reason for t in trades], dtype=np.int8),
    )


def ledger_of(result: BacktestResult) -> Ledger:
    """The ledger of a finished backtest (its symbols, marked at each asset's last close)."""
    closes = result.last_closes or (result.last_close,)
    return ledger(result.fills, result.symbols, closes)


def _whole_fills(
    fills: Fills, symbols: Sequence[str], last_closes: Sequence[float]
) -> Ledger | None:
    """The fold for fills that never add to a position nor close part of it; None otherwise."""
    m = len(fills)
    n_assets = len(symbols)
    asset = fills.asset.astype(np.int64)
    side = fills.side.astype(np.float64)
    qty, price, fee = fills.qty, fills.price, fills.fee
    # One pass in plain floats: what each fill closes and opens, and each asset's previous and
    # next fill; give up (the loop decides) on a fill that adds to a position or closes part.
    opening_l = [0.0] * m
    closing_l = [0.0] * m
    prev_l = [-1] * m
    next_l = [-1] * m
    held = [0.0] * n_assets
    held_side = [0] * n_assets
    last = [-1] * n_assets
    for i, (a, sd, qt) in enumerate(
        zip(fills.asset.tolist(), fills.side.tolist(), qty.tolist(), strict=True)
    ):
        before = held[a]
        if before > 0.0:
            if sd == held_side[a] or qt < before:
                return None
            closing_l[i] = before
            op = qt - before
        else:
            op = qt
        opening_l[i] = op
        held[a], held_side[a] = op, sd
        j = last[a]
        prev_l[i] = j
        if j >= 0:
            next_l[j] = i
        last[a] = i
    opening = np.array(opening_l, dtype=np.float64)
    closing = np.array(closing_l, dtype=np.float64)
    prev = np.array(prev_l, dtype=np.int64)
    order = np.lexsort((np.arange(m), asset))
    with np.errstate(divide="ignore", invalid="ignore"):
        share_c = np.where(closing > 0.0, closing / qty, 0.0)
        share_o = np.where(opening > 0.0, opening / qty, 0.0)
    c_fee = fee * share_c
    o_fee = fee * share_o
    basis_open = side * opening * price + o_fee  # 0.0 + ... in the loop: the same value
    released = np.where(prev >= 0, basis_open[np.maximum(prev, 0)], 0.0)
    gain = -(side * closing * price) - c_fee - released
    gain = np.where(closing > 0.0, gain, 0.0)
    realized = np.zeros(n_assets)
    fees_sum = np.zeros(n_assets)
    opened = np.zeros(n_assets, dtype=np.int64)
    qty_end = np.zeros(n_assets)
    basis_end = np.zeros(n_assets)
    entry_qty = np.zeros(n_assets)
    entry_value = np.zeros(n_assets)
    for a in range(n_assets):
        mine = order[asset[order] == a]
        if len(mine) == 0:
            continue
        g = gain[mine][closing[mine] > 0.0]
        realized[a] = float(np.cumsum(g)[-1]) if len(g) else 0.0
        fees_sum[a] = float(np.cumsum(fee[mine])[-1])
        opened[a] = int(np.count_nonzero(opening[mine] > 0.0))
        end = int(mine[-1])
        if opening[end] > 0.0:
            qty_end[a] = 0.0 + side[end] * opening[end]
            basis_end[a] = basis_open[end]
            entry_qty[a] = opening[end]
            entry_value[a] = opening[end] * price[end]
    positions = []
    unrealized = np.zeros(n_assets)
    for a in range(n_assets):
        close = float(last_closes[a])
        u = float(qty_end[a] * close - basis_end[a]) if qty_end[a] != 0.0 else 0.0
        unrealized[a] = u
        avg = _avg(float(entry_value[a]), float(entry_qty[a])) if qty_end[a] != 0.0 else 0.0
        positions.append(
            PositionSummary(
                symbol=symbols[a],
                qty=float(qty_end[a]),
                avg_entry_price=avg,
                realized_pnl=float(realized[a]),
                unrealized_pnl=u,
                fees=float(fees_sum[a]),
                trades=int(opened[a]),
                last_close=close,
            )
        )
    # trades: one per opening fill, closed by the next fill of its asset (if any)
    opens = np.flatnonzero(opening > 0.0)
    closer = np.array(next_l, dtype=np.int64)[opens]
    closed = closer >= 0
    cl = np.maximum(closer, 0)
    t_asset = asset[opens]
    pnl = np.where(closed, gain[cl], 0.0)
    still_open = ~closed
    if bool(still_open.any()):
        pnl[still_open] = pnl[still_open] + unrealized[t_asset[still_open]]
    t_fees = np.where(closed, (0.0 + o_fee[opens]) + c_fee[cl], 0.0 + o_fee[opens])
    peak_basis = np.abs(basis_open[opens])
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where(peak_basis > 0.0, pnl / peak_basis, 0.0)
        exit_price = np.where(
            closed,
            (closing[cl] * price[cl]) / closing[cl],
            np.array([float(last_closes[a]) for a in t_asset.tolist()]),
        )
    trades = Trades(
        asset=t_asset.astype(np.int16),
        side=fills.side[opens].astype(np.int8),
        entry_bar=fills.bar[opens].astype(np.int64),
        entry_price=(opening[opens] * price[opens]) / opening[opens],
        exit_bar=np.where(closed, fills.bar[cl], -1).astype(np.int64),
        exit_price=exit_price,
        qty=np.abs(0.0 + side[opens] * opening[opens]),
        pnl=pnl,
        ret=ret,
        fees=t_fees,
        exit_reason=np.where(closed, fills.reason[cl], OPEN).astype(np.int8),
    )
    return Ledger(tuple(positions), trades)
