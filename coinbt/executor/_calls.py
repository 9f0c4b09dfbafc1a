"""Plain function calls in a worker process (sweep chunks), shared by the local child and Dask.

A call names its function as ``"module:function"`` inside ``coinbt`` and passes a msgpack-able
``args`` mapping, a progress callback and the staged bars (a file path, a ``Bars`` object or
None); whatever the function returns (msgpack-able) goes back to the caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ("invoke",)


def invoke(
    fn: str, args: Mapping[str, Any], progress: Callable[[float], None], bars: object
) -> Any:
    """Import ``fn`` (``"coinbt.module:function"``) and call it; ``ValueError`` for others."""
    module, _, name = fn.partition(":")
    if not (module == "coinbt" or module.startswith("coinbt.")) or not name.isidentifier():
        raise ValueError(f"not a coinbt function: {fn!r}")
    function = getattr(importlib.import_module(module), name)
    return function(args, progress, bars)
