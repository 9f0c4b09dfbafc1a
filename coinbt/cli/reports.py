"""``coinbt export`` and ``coinbt report``: a completed task's tables and tear sheet, downloaded
from a running server (standard library only, like the other client commands)."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from coinbt.cli.client import add_common, client_of
from coinbt.errors import CoinbtError

__all__ = ("register",)

WHAT = ("fills", "trades", "equity")
FORMATS = ("csv", "parquet")


def _write(body: bytes, output: str | None, binary: bool) -> None:
    if output is None or output == "-":
        if binary and sys.stdout.isatty():
            raise CoinbtError("Parquet is binary: give -o FILE instead of printing it")
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return
    try:
        Path(output).write_bytes(body)
    except OSError as e:
        raise CoinbtError(f"-o: cannot write {output}: {e.strerror or e}") from None
    print(f"wrote {output} ({len(body):,} bytes)", file=sys.stderr)


def _export(args: argparse.Namespace) -> int:
    task_id = urllib.parse.quote(args.task_id, safe="")
    body = client_of(args).download(f"/backtests/{task_id}/{args.what}?format={args.format}")
    _write(body, args.output, binary=args.format == "parquet")
    return 0


def _report(args: argparse.Namespace) -> int:
    task_id = urllib.parse.quote(args.task_id, safe="")
    body = client_of(args).download(f"/backtests/{task_id}/report")
    _write(body, args.output, binary=False)
    return 0


def register(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export",
        help="download a completed task's fills, trades or equity as CSV or Parquet",
        description=(
            "Download a completed task's fills, round-trip trades or equity curve (every row) "
            "from a running server. CSV times are ISO-8601 UTC and epoch ms; Parquet needs "
            "pyarrow on the server (pip install 'coinbt[parquet]')."
        ),
        epilog="example:\n  coinbt export r1-000001 --what trades --format csv -o trades.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("task_id", metavar="TASK_ID")
    export.add_argument("--what", choices=WHAT, default="trades", help="default: trades")
    export.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    add_common(export)
    export.set_defaults(func=_export)

    report = subparsers.add_parser(
        "report",
        help="download a completed task's tear sheet (one offline HTML file)",
        description=(
            "Download a completed task's tear sheet: one self-contained HTML file (no network "
            "needed to open it) with equity and drawdown charts, a buy-and-hold benchmark, "
            "monthly returns, trade statistics and the run's provenance."
        ),
        epilog="example:\n  coinbt report r1-000001 -o report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("task_id", metavar="TASK_ID")
    report.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    add_common(report)
    report.set_defaults(func=_report)
