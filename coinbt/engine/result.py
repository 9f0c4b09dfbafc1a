"""The outcome of a backtest: fills, equity curve, metrics, and a digest of all three."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.metrics import Metrics
from coinbt.engine.spec import BacktestSpec

if TYPE_CHECKING:
    import os

    from coinbt.engine.data import Bars

__all__ = ("DIGEST_VERSION", "DIGEST_VERSION_2", "REASONS", "BacktestResult", "Fill", "Fills")

DIGEST_VERSION = b"coinbt.result.v1\n"
DIGEST_VERSION_2 = b"coinbt.result.v2\n"

REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop")
"""Why a fill happened; ``Fills.reason`` holds the index into this tuple."""

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class Fill(NamedTuple):
    """One fill: the bar and its timestamp (epoch ms), side "buy" or "sell", quantity, price
    (slippage included), fee (in cash), why it happened (one of ``REASONS``) and the index of its
    asset in the run's symbols (0 for a single asset).
    """

    bar: int
    ts: int
    side: str
    qty: float
    price: float
    fee: float
    reason: str = "signal"
    asset: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The fill as ``Fills.to_dicts`` shows it (the asset index left out)."""
        out = self._asdict()
        del out["asset"]
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Fills:
    """Every fill, column-wise (read-only arrays); ``side`` is 1 for a buy, -1 for a sell;
    ``reason`` indexes ``REASONS``; ``asset`` indexes the run's symbols.
    """

    bar: IntArray
    ts: IntArray
    side: NDArray[np.int8]
    qty: FloatArray
    price: FloatArray
    fee: FloatArray
    reason: NDArray[np.int8]
    asset: NDArray[np.int16]

    @property
    def plain(self) -> bool:
        """One asset and every fill a signal: the v1 digest (and today's JSON shape) applies."""
        return not (self.reason.any() or self.asset.any())

    def __len__(self) -> int:
        return len(self.bar)

    def __getitem__(self, i: int) -> Fill:
        return Fill(
            int(self.bar[i]),
            int(self.ts[i]),
            "buy" if self.side[i] > 0 else "sell",
            float(self.qty[i]),
            float(self.price[i]),
            float(self.fee[i]),
            REASONS[int(self.reason[i])],
            int(self.asset[i]),
        )

    def __iter__(self) -> Iterator[Fill]:
        return (self[i] for i in range(len(self)))

    def to_dicts(self, symbols: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """``[{"bar", "ts", "side", "qty", "price", "fee", "reason"}, ...]`` in time order, with
        ``"symbol"`` too when ``symbols`` is given.
        """
        sides = ["buy" if s > 0 else "sell" for s in self.side.tolist()]
        reasons = [REASONS[r] for r in self.reason.tolist()]
        rows = [
            {"bar": b, "ts": t, "side": s, "qty": q, "price": p, "fee": f, "reason": r}
            for b, t, s, q, p, f, r in zip(
                self.bar.tolist(),
                self.ts.tolist(),
                sides,
                self.qty.tolist(),
                self.price.tolist(),
                self.fee.tolist(),
                reasons,
                strict=True,
            )
        ]
        if symbols is not None:
            for row, a in zip(rows, self.asset.tolist(), strict=True):
                row["symbol"] = symbols[a]
        return rows


@dataclass(frozen=True, slots=True, eq=False)
class BacktestResult:
    """A finished backtest. ``equity[t]`` is cash + qty * close[t] after bar t's fills; an open
    position at the end is marked at the last close (``final_qty`` > 0), not sold.
    """

    spec: BacktestSpec
    params: dict[str, int | float]  # the parameters used, defaults filled in
    fills: Fills
    equity: FloatArray
    metrics: Metrics
    final_equity: float
    total_return: float
    max_drawdown: float
    num_fills: int
    num_trades: int
    total_fees: float
    final_qty: float
    final_cash: float
    last_close: float
    symbols: tuple[str, ...] = ("",)  # the assets' names, in asset order ("" when unnamed)
    last_closes: tuple[float, ...] = ()  # per asset; empty means (last_close,)
    bars: Bars | None = None  # the (first asset's) bars it ran on: times, benchmark, reports
    assets: tuple[Bars, ...] = ()  # a portfolio's every asset's bars, aligned (the benchmark)

    def to_pandas(self) -> Any:
        """``{"equity", "fills", "trades"}`` as pandas DataFrames indexed by UTC time (needs the
        ``coinbt[pandas]`` extra; ``MissingExtraError`` without it). See docs/reports.md."""
        from coinbt.engine._frames import result_frames

        return result_frames(self)

    def report(self, path: str | os.PathLike[str]) -> None:
        """Write the tear sheet (one self-contained HTML file, docs/reports.md) to ``path``."""
        from coinbt.report.tearsheet import write_result_report

        write_result_report(self, path)

    def to_dict(self, include_fills: bool = True) -> dict[str, Any]:
        """The JSON shape of ``coinbt backtest --json`` (DESIGN.md section 7)."""
        out: dict[str, Any] = {
            "strategy": self.spec.strategy,
            "params": dict(self.params),
            "bars": len(self.equity),
            "final_equity": self.final_equity,
            "total_return": self.total_return,
            "max_drawdown": self.max_drawdown,
            "num_fills": self.num_fills,
            "num_trades": self.num_trades,
            "total_fees": self.total_fees,
            "final_qty": self.final_qty,
            "last_close": self.last_close,
            "metrics": dict(self.metrics),
        }
        if include_fills:
            out["fills"] = self.fills.to_dicts()
        return out

    def digest(self) -> str:
        """sha256 (hex) of the canonical encoding of fills, equity and metrics.

        The encoding: ``b"coinbt.result.v1\\n"``; the fill count and bar count as two little-endian
        uint64; the fill columns bar (int64), ts (int64), side (int8), qty, price, fee (float64),
        each as little-endian bytes; the equity curve (float64, little-endian); then the metrics
        as JSON with sorted keys, no spaces, and Python's shortest round-trip float repr.

        When a fill has a reason other than ``signal`` or an asset other than 0, the prefix is
        ``b"coinbt.result.v2\\n"`` and the columns reason (int8) and asset (int16) follow fee;
        so results that v1 could describe keep the digests recorded before v2 existed.
        """
        f = self.fills
        h = hashlib.sha256(DIGEST_VERSION if f.plain else DIGEST_VERSION_2)
        h.update(struct.pack("<QQ", len(self.fills), len(self.equity)))
        columns: list[tuple[NDArray[Any], str]] = [
            (f.bar, "<i8"),
            (f.ts, "<i8"),
            (f.side, "<i1"),
            (f.qty, "<f8"),
            (f.price, "<f8"),
            (f.fee, "<f8"),
        ]
        if not f.plain:
            columns += [(f.reason, "<i1"), (f.asset, "<i2")]
        columns.append((self.equity, "<f8"))
        for arr, dtype in columns:
            h.update(np.ascontiguousarray(arr, dtype=dtype).tobytes())
        text = json.dumps(self.metrics, sort_keys=True, separators=(",", ":"), allow_nan=False)
        h.update(text.encode())
        return h.hexdigest()
