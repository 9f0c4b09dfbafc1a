"""TA-Lib's functions as catalogue entries, generated from ``talib.abstract``'s metadata.

For each TA-Lib function: its price inputs given as a list (``prices: [high, low, close]``) are
read from the bars implicitly; a single real input (``price``, ``price0``, ``periods``) is a series
argument the rule passes; each optional input becomes an argument with TA-Lib's default: integer
periods are windows (positive, at most the number of bars, and within TA-Lib's own range, found by
asking TA-Lib), moving-average types integers 0..8, the rest numbers. A function with several
outputs gives one catalogue entry per output, ``<name>_<output>`` (``bbands_upperband``). Names
that coinbt's own functions use (``sma``, ``rsi``, ``max``, ...) stay coinbt's.

``NON_CAUSAL`` lists the functions left out because their value at a bar depends on later bars
(tests/engine/rules/test_causal.py checks that every entry kept is causal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coinbt.engine.rules.catalogue import Arg, Context, Function, Value

__all__ = ("NON_CAUSAL", "talib_functions")

NON_CAUSAL = frozenset[str]()
"""None today: even FRACTAL reports a swing at the bar that confirms it, not before."""

_MA_TYPES = 8
_PROBE = np.linspace(100.0, 110.0, 64)


def _import_talib() -> Any:
    import talib
    import talib.abstract

    return talib


def _call_output(name: str, output: int, inputs: tuple[str, ...], n_series: int) -> Any:
    def impl(ctx: Context, args: Sequence[Value]) -> Value:
        talib = _import_talib()
        fn = getattr(talib, name)
        series = [np.ascontiguousarray(a, dtype=np.float64) for a in args[:n_series]]
        columns = [ctx.column(c) for c in inputs]
        out = fn(*series, *columns, *args[n_series:])
        if isinstance(out, tuple):
            out = out[output]
        return np.asarray(out, dtype=np.float64)

    return impl


def _probe_min(name: str, index: int, n_inputs: int, defaults: list[Any]) -> int:
    """The smallest period TA-Lib accepts for optional input ``index`` (1 or 2)."""
    talib = _import_talib()
    fn = getattr(talib, name)
    for value in (1, 2):
        opts = list(defaults)
        opts[index] = value
        try:
            fn(*([_PROBE] * n_inputs), *opts)
        except Exception:
            continue
        return value
    return 2


def talib_functions() -> list[Function]:
    """Every causal TA-Lib function as catalogue entries (one per output)."""
    try:
        talib = _import_talib()
    except ImportError:  # pragma: no cover - ta-lib is a dependency
        return []
    lib: Any = talib._ta_lib

    out: list[Function] = []
    for name in talib.get_functions():
        if name in NON_CAUSAL:
            continue
        info = talib.abstract.Function(name).info
        series_args: list[Arg] = []
        columns: list[str] = []
        for key, value in info["input_names"].items():
            if isinstance(value, list):
                columns.extend(value)
            else:
                series_args.append(Arg(key, "series"))
        defaults = list(info["parameters"].values())
        params: list[Arg] = []
        count = lib._ta_getFuncInfo(name.encode())["num_opt_inputs"]
        for j in range(count):
            meta = lib._ta_getOptInputParameterInfo(name.encode(), j)
            pname, default = meta["name"], meta["default_value"]
            if meta["type"] == 2:  # an integer range: a period
                n_in = len(series_args) + len(columns)
                low = _probe_min(name, j, n_in, defaults)
                params.append(Arg(pname, "window", int(default), low))
            elif meta["type"] == 3:  # an integer list: a moving-average type
                params.append(Arg(pname, "integer", int(default), 0, _MA_TYPES))
            else:
                params.append(Arg(pname, "number", float(default)))
        outputs = list(info["output_names"])
        for k, output in enumerate(outputs):
            fname = name.lower() if len(outputs) == 1 else f"{name.lower()}_{output.lower()}"
            describe = f"TA-Lib {name}: {info['display_name']}"
            if len(outputs) > 1:
                describe += f" ({output})"
            out.append(
                Function(
                    fname,
                    (*series_args, *params),
                    "series",
                    describe,
                    _call_output(name, k, tuple(columns), len(series_args)),
                    inputs=tuple(columns),
                    source="talib",
                    output=output,
                )
            )
    return out
