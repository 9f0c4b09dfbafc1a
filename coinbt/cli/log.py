"""Commands over the event log: replay, audit, migrate (filled in by the store and service)."""

from __future__ import annotations

from typing import Any

__all__ = ("register",)


def register(subparsers: Any) -> None:
    del subparsers
