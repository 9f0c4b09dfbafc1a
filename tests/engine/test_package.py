"""The public surface of coinbt.engine and its place on the import ladder."""

from __future__ import annotations

import json
import subprocess
import sys

import coinbt.engine as engine

PUBLIC = {
    "Bars",
    "load_csv",
    "parse_csv",
    "save_bars",
    "load_bars",
    "synthetic",
    "parse_interval",
    "BacktestSpec",
    "run",
    "BacktestResult",
    "sweep",
    "SweepResult",
    "STRATEGIES",
    "Strategy",
    "validate_spec",
}


def test_all_is_honest() -> None:
    assert isinstance(engine.__all__, tuple)
    assert set(engine.__all__) >= PUBLIC
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    assert list(engine.__all__) == sorted(engine.__all__, key=lambda n: (not n.isupper(), n))


def test_the_engine_imports_nothing_async_and_nothing_else_from_coinbt() -> None:
    code = (
        "import sys, json, coinbt.engine; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('coinbt', 'anyio', 'aiosqlite', 'starlette', 'aiobotocore', 'msgspec', 'uvicorn'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout)
    outside = [
        m
        for m in modules
        if not m.startswith("coinbt.engine") and m not in ("coinbt", "coinbt.errors")
    ]
    assert outside == []
