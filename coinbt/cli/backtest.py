"""``coinbt backtest`` and ``coinbt sweep`` (the engine's commands)."""

from __future__ import annotations

from typing import Any

__all__ = ("register",)


def register(subparsers: Any) -> None:
    del subparsers
