"""The catalogue's named indicators that TA-Lib computes (wma, macd, atr, stoch, adx, cci, obv)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coinbt.engine.rules.catalogue import Context, Value

__all__ = ("adx", "atr", "cci", "macd", "macd_signal", "obv", "stoch_d", "stoch_k", "wma")


def _ta() -> Any:
    import talib

    return talib


def _f(x: Value) -> Any:
    return np.ascontiguousarray(x, dtype=np.float64)


def _hlc(ctx: Context) -> tuple[Any, Any, Any]:
    return ctx.column("high"), ctx.column("low"), ctx.column("close")


def wma(ctx: Context, a: Sequence[Value]) -> Value:
    return _ta().WMA(_f(a[0]), int(a[1]))


def _macd(a: Sequence[Value]) -> tuple[Any, Any, Any]:
    result: tuple[Any, Any, Any] = _ta().MACD(_f(a[0]), int(a[1]), int(a[2]), int(a[3]))
    return result


def macd(ctx: Context, a: Sequence[Value]) -> Value:
    return _macd(a)[0]


def macd_signal(ctx: Context, a: Sequence[Value]) -> Value:
    return _macd(a)[1]


def atr(ctx: Context, a: Sequence[Value]) -> Value:
    return _ta().ATR(*_hlc(ctx), int(a[0]))


def _stoch(ctx: Context, k: int, smooth: int, d: int) -> tuple[Any, Any]:
    result: tuple[Any, Any] = _ta().STOCH(*_hlc(ctx), k, smooth, 0, d, 0)
    return result


def stoch_k(ctx: Context, a: Sequence[Value]) -> Value:
    return _stoch(ctx, int(a[0]), int(a[1]), 3)[0]


def stoch_d(ctx: Context, a: Sequence[Value]) -> Value:
    return _stoch(ctx, int(a[0]), int(a[1]), int(a[2]))[1]


def adx(ctx: Context, a: Sequence[Value]) -> Value:
    return _ta().ADX(*_hlc(ctx), int(a[0]))


def cci(ctx: Context, a: Sequence[Value]) -> Value:
    return _ta().CCI(*_hlc(ctx), int(a[0]))


def obv(ctx: Context, a: Sequence[Value]) -> Value:
    return _ta().OBV(ctx.column("close"), ctx.column("volume"))
