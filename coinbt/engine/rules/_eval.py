"""Evaluating checked rule trees with numpy, each distinct subexpression once.

Parameters are substituted first, so a subexpression's key holds its actual values: in one
evaluation (entry, exit and the short rules together) equal subexpressions are computed once,
and indicator calls are also kept per bars (next to the engine's ``IndicatorCache``) so that a
sweep computes ``sma(close, 10)`` or ``atr(14)`` once for the whole grid. sma, ema, rsi, the
Bollinger bands and highest/lowest of the matching column come from the ``IndicatorCache``
itself: the very arrays the builtin strategies use.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.rules._compile import Node
from coinbt.engine.rules.catalogue import Arg, Context, Value, catalogue

__all__ = ("evaluate",)

_KEEP = 32  # indicator arrays kept per bars across evaluations (a sweep), least recent dropped
_shared: weakref.WeakKeyDictionary[IndicatorCache, OrderedDict[Node, Value]] = (
    weakref.WeakKeyDictionary()
)


def _bind(node: Node, params: Mapping[str, float | int]) -> Node:
    tag = node[0]
    if tag == "param":
        return ("const", params[node[1]])
    if tag in ("col", "const"):
        return node
    if tag == "call":
        return ("call", node[1], tuple(_bind(a, params) for a in node[2]))
    if tag in ("and", "or"):
        return (tag, tuple(_bind(a, params) for a in node[1]))
    if tag in ("neg", "not"):
        return (tag, _bind(node[1], params))
    return (tag, node[1], _bind(node[2], params), _bind(node[3], params))


class _Evaluator:
    def __init__(self, ctx: Context, shared: OrderedDict[Node, Value]) -> None:
        self.ctx = ctx
        self.memo: dict[Node, Value] = {}
        self.shared = shared
        self.functions = catalogue()

    def value(self, node: Node) -> Value:
        found = self.memo.get(node)
        if found is None:
            found = self.memo[node] = self.compute(node)
        return found

    def compute(self, node: Node) -> Value:
        tag = node[0]
        if tag == "const":
            value = node[1]
            return value if isinstance(value, bool) else np.float64(value)
        if tag == "col":
            return self.ctx.column(node[1])
        if tag == "call":
            return self.call(node)
        if tag == "neg":
            return -self.value(node[1])
        if tag == "not":
            return np.logical_not(self.value(node[1]))
        if tag == "and":
            return _fold(np.logical_and, [self.value(x) for x in node[1]])
        if tag == "or":
            return _fold(np.logical_or, [self.value(x) for x in node[1]])
        a, b = self.value(node[2]), self.value(node[3])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return _BINARY[node[1]](a, b)

    def call(self, node: Node) -> Value:
        found = self.shared.get(node)
        if found is not None:
            self.shared.move_to_end(node)
            return found
        f = self.functions[node[1]]
        args = [_plain(arg, self.value(a)) for arg, a in zip(f.args, node[2], strict=True)]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            result = f.impl(self.ctx, args)
        if isinstance(result, np.ndarray) and result.dtype != np.bool_:
            result = np.asarray(result, dtype=np.float64)
        if f.returns == "series":
            self.shared[node] = result
            if len(self.shared) > _KEEP:
                self.shared.popitem(last=False)
        return result


_BINARY: dict[str, Any] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _fold(op: Any, values: list[Value]) -> Value:
    out = values[0]
    for v in values[1:]:
        out = op(out, v)
    return out


def _plain(arg: Arg, value: Value) -> Value:
    """Scalars as Python numbers (windows and integers as ints) for the implementations."""
    if arg.kind in ("window", "integer"):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def context(cache: IndicatorCache) -> Context:
    bars = cache.bars
    if bars is None:  # every engine path builds its cache with IndicatorCache.of(bars)
        raise ValueError("rules need an IndicatorCache made with IndicatorCache.of(bars)")
    columns = {"close": cache.close, "high": cache.high, "low": cache.low}
    columns["open"] = bars.open
    columns["volume"] = bars.volume
    return Context(cache, columns, len(cache.close))


def evaluate(
    nodes: Sequence[Node], params: Mapping[str, float | int], cache: IndicatorCache
) -> list[NDArray[np.bool_]]:
    """Each rule tree as a boolean array as long as the bars (NaN compares false)."""
    shared = _shared.get(cache)
    if shared is None:
        shared = _shared[cache] = OrderedDict()
    ev = _Evaluator(context(cache), shared)
    n = len(cache.close)
    out = []
    for node in nodes:
        value = ev.value(_bind(node, params))
        array = np.zeros(n, dtype=np.bool_)
        array[:] = value  # a copy (memoized arrays stay untouched), a constant broadcast
        out.append(array)
    return out
