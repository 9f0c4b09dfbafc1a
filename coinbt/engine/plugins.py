"""Plugins: Python strategies installed on the server (DESIGN.md section 10; docs/strategies.md).

A plugin is an object (or a class, instantiated with no arguments) with

- ``name``: the strategy's name in specs (an identifier, not a builtin's),
- ``description``: what it does, stated exactly,
- ``params``: a mapping ``name -> {"type": "integer" | "number", "default", "minimum",
  "maximum", "description"}`` (or a sequence of :class:`coinbt.engine.Param`),
- ``signals(bars, params)``: returns :class:`coinbt.engine.Signals`, a dict, or a tuple of numpy
  boolean arrays as long as the bars: ``entries``, ``exits``, optionally ``short_entries`` and
  ``short_exits``; a value at bar i may use bars <= i only,
- optionally ``min_bars(params) -> int``: the fewest bars it needs (default 1).

Found in the entry-point group ``coinbt.strategies`` (each entry point names a plugin object or
class), and in the ``*.py`` modules of the directories in ``COINBT_STRATEGY_PATH`` (separated by
``os.pathsep``; ``coinbt serve --strategies DIR`` adds to it, so the worker processes it starts
see the same plugins). A module offers ``STRATEGIES = [...]``, or ``STRATEGY = ...``, or else
every class defined in it that has ``name`` and ``signals``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from coinbt.engine._params import Param
from coinbt.engine.indicators import IndicatorCache
from coinbt.engine.signals import Signals, SignalsError, as_signals
from coinbt.engine.strategies import STRATEGIES, BoolArray, Params, Strategy
from coinbt.errors import StrategyError

__all__ = (
    "PATH_VARIABLE",
    "PluginLoadError",
    "load_file",
    "plugin_errors",
    "plugins",
    "register",
    "reset_plugins",
    "wrap",
)

PATH_VARIABLE = "COINBT_STRATEGY_PATH"
ENTRY_POINT_GROUP = "coinbt.strategies"


@dataclass(frozen=True, slots=True)
class PluginLoadError:
    """A plugin that could not be loaded: where it came from and why."""

    origin: str
    message: str


_loaded: dict[str, Strategy] | None = None
_registered: dict[str, Strategy] = {}
_errors: list[PluginLoadError] = []
_key: str | None = None


def _sha256(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _param(name: str, spec: object) -> Param:
    if isinstance(spec, Param):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(f"parameter {name!r}: expected a dict like {{'type': 'integer', ...}}")
    kind = spec.get("type", "number")
    if kind not in ("integer", "number"):
        raise TypeError(f"parameter {name!r}: type must be 'integer' or 'number', got {kind!r}")
    default = spec.get("default")
    if default is None:
        raise TypeError(f"parameter {name!r}: needs a default")
    limit = 1e15 if kind == "number" else 10**15
    return Param(
        name,
        kind,
        default,
        spec.get("minimum", -limit),
        spec.get("maximum", limit),
        str(spec.get("description", "")),
    )


def _params(plugin: Any) -> tuple[Param, ...]:
    params = getattr(plugin, "params", None) or {}
    if isinstance(params, Mapping):
        return tuple(_param(str(k), v) for k, v in params.items())
    return tuple(_param(getattr(p, "name", "?"), p) for p in params)


def wrap(plugin: Any, *, module: ModuleType | None = None, version: str | None = None) -> Strategy:
    """A plugin object as a :class:`Strategy` (``TypeError`` if it breaks the protocol)."""
    if isinstance(plugin, type):
        plugin = plugin()
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise TypeError(f"a plugin needs a name that is an identifier, got {name!r}")
    if not callable(getattr(plugin, "signals", None)):
        raise TypeError(f"plugin {name!r} has no signals(bars, params) method")
    module = module or sys.modules.get(type(plugin).__module__)
    path = getattr(module, "__file__", None)
    version = version or getattr(module, "__version__", None)
    min_bars = getattr(plugin, "min_bars", None)

    def all_signals(cache: IndicatorCache, p: Params) -> Signals:
        bars = cache.bars
        if bars is None:  # pragma: no cover - every engine cache carries its bars
            raise StrategyError(f"plugin {name!r} needs the bars")
        try:
            raw = plugin.signals(bars, dict(p))
        except Exception:
            raise StrategyError(
                f"plugin strategy {name!r} raised:\n{traceback.format_exc()}"
            ) from None
        try:
            return as_signals(raw, len(bars))
        except SignalsError as e:
            raise StrategyError(f"plugin strategy {name!r} returned bad signals: {e}") from None

    def signal_fn(cache: IndicatorCache, p: Params) -> tuple[BoolArray, BoolArray]:
        s = all_signals(cache, p)
        return s.entries, s.exits

    def lookback(p: Params) -> tuple[int, str | None]:
        if min_bars is None:
            return 1, None
        try:
            return max(1, int(min_bars(dict(p)))), None
        except Exception as e:
            raise StrategyError(f"plugin strategy {name!r}: min_bars raised {e!r}") from None

    return Strategy(
        name=name,
        description=str(getattr(plugin, "description", "") or name),
        params=_params(plugin),
        signal_fn=signal_fn,
        lookback_fn=lookback,
        source="plugin",
        provenance={
            "source": "plugin",
            "module": getattr(module, "__name__", None),
            "sha256": _sha256(path),
            "version": version,
        },
        signals_fn=all_signals,
    )


def _candidates(module: ModuleType) -> list[Any]:
    listed = getattr(module, "STRATEGIES", None)
    if listed is not None:
        return list(listed)
    single = getattr(module, "STRATEGY", None)
    if single is not None:
        return [single]
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and v.__module__ == module.__name__
        and callable(getattr(v, "signals", None))
        and isinstance(getattr(v, "name", None), str)
    ]


def load_file(path: str | os.PathLike[str]) -> list[Strategy]:
    """The plugins of one Python file (``coinbt backtest --strategy-file``); raises what the
    import raises, or ``TypeError`` for an object that breaks the protocol."""
    file = Path(path).resolve()
    digest = hashlib.sha256(os.fsencode(file)).hexdigest()[:12]
    module_name = f"coinbt_plugin_{file.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return [wrap(p, module=module) for p in _candidates(module)]


def _entry_points() -> Iterable[tuple[str, Strategy]]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
            module = sys.modules.get(ep.module)
            version = ep.dist.version if ep.dist is not None else None
            yield origin, wrap(obj, module=module, version=version)
        except Exception as e:
            _errors.append(PluginLoadError(origin, f"{type(e).__name__}: {e}"))


def _directories() -> Iterable[tuple[str, Strategy]]:
    for directory in os.environ.get(PATH_VARIABLE, "").split(os.pathsep):
        if not directory:
            continue
        folder = Path(directory)
        if not folder.is_dir():
            _errors.append(PluginLoadError(directory, "not a directory"))
            continue
        for file in sorted(folder.glob("*.py")):
            if file.name.startswith("_"):
                continue
            try:
                for strategy in load_file(file):
                    yield str(file), strategy
            except Exception as e:
                _errors.append(PluginLoadError(str(file), f"{type(e).__name__}: {e}"))


def plugins() -> dict[str, Strategy]:
    """Every plugin strategy found (loaded once per process and per ``COINBT_STRATEGY_PATH``)."""
    global _loaded, _key
    key = os.environ.get(PATH_VARIABLE, "")
    if _loaded is not None and key == _key:
        return _loaded
    _errors.clear()
    found: dict[str, Strategy] = {}
    registered = [(f"registered {name}", s) for name, s in _registered.items()]
    for origin, strategy in [*registered, *_entry_points(), *_directories()]:
        if strategy.name in STRATEGIES or strategy.name == "rules":
            _errors.append(PluginLoadError(origin, f"{strategy.name!r} is a builtin's name"))
        elif strategy.name in found:
            _errors.append(PluginLoadError(origin, f"{strategy.name!r} is defined twice"))
        else:
            found[strategy.name] = strategy
    _loaded, _key = found, key
    return found


def register(strategy: Strategy) -> None:
    """Make a plugin strategy known in this process (``coinbt backtest --strategy-file``)."""
    _registered[strategy.name] = strategy
    reset_plugins()


def plugin_errors() -> list[PluginLoadError]:
    """What could not be loaded by the last :func:`plugins` call."""
    plugins()
    return list(_errors)


def reset_plugins(*, registered: bool = False) -> None:
    """Forget the loaded plugins (the next :func:`plugins` call looks again); with
    ``registered``, also those given to :func:`register`."""
    global _loaded
    _loaded = None
    if registered:
        _registered.clear()
