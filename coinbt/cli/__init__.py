"""The ``coinbt`` command line: one entry point, a sub-command per module.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)``; it adds its commands with a
``func(args) -> int`` default. Modules import heavy dependencies inside their handlers, so that
``coinbt --help`` and ``coinbt backtest`` start fast. Errors coinbt raises on purpose are printed to
stderr without a traceback and exit 2 (bad input) — handlers return 1 for a failed verification.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from coinbt import __version__
from coinbt.dburl import is_memory
from coinbt.errors import CoinbtError

__all__ = ("COMMAND_MODULES", "build_parser", "main")

COMMAND_MODULES: tuple[str, ...] = (
    "coinbt.cli.backtest",
    "coinbt.cli.serve",
    "coinbt.cli.data",
    "coinbt.cli.client",
    "coinbt.cli.sweeps",
    "coinbt.cli.log",
    "coinbt.cli.storage",
    "coinbt.cli.reports",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coinbt",
        description=(
            "Crypto backtests as durable, auditable tasks. Run one backtest locally with "
            "'coinbt backtest', or start the service with 'coinbt serve'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"coinbt {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 check failed, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if is_memory(getattr(args, "db", None)) and not getattr(args, "memory_ok", False):
        print(
            "coinbt: error: --db memory: keeps nothing once a command ends; "
            "only 'coinbt serve' can use it",
            file=sys.stderr,
        )
        return 2
    try:
        status: int = args.func(args)
    except CoinbtError as e:
        print(f"coinbt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coinbt: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
