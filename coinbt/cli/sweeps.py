"""Sweeps on a running server: ``coinbt sweep ... --submit [--wait]`` and ``coinbt sweeps
list/status/cancel`` (clients of ``/sweeps``, standard library only like ``coinbt submit``)."""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.parse
from typing import Any

from coinbt.cli.client import (
    ApiClient,
    StatusChoices,
    _add_common,
    _client,
    _follow,
    _print_task,
    list_page,
)
from coinbt.errors import SpecError

__all__ = ("print_walk_forward", "register", "submit_sweep")


def register(subparsers: Any) -> None:
    sweeps = subparsers.add_parser(
        "sweeps",
        help="sweeps on a running server: list, status, cancel",
        description=(
            "Sweeps and walk-forwards submitted to a running server (coinbt sweep ... --submit)."
        ),
        epilog=(
            "examples:\n"
            "  coinbt sweeps list --status completed\n"
            "  coinbt sweeps status TASK_ID --top 10\n"
            "  coinbt sweeps cancel TASK_ID"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = sweeps.add_subparsers(title="commands", metavar="COMMAND", required=True)
    lst = commands.add_parser(
        "list",
        help="sweeps, newest first",
        description="List sweeps.",
        epilog="example: coinbt sweeps list --status completed",
    )
    _add_common(lst)
    lst.add_argument(
        "--status", choices=StatusChoices(), metavar="STATUS", help="one of %(choices)s"
    )
    lst.add_argument("--limit", type=int, default=20, help="how many (20)")
    lst.set_defaults(func=_list)
    status = commands.add_parser(
        "status",
        help="one sweep, with its best rows when completed",
        description="Show one sweep: status, and when completed its best rows, the deflated "
        "Sharpe ratio and, for a walk-forward, every fold and the degradation.",
        epilog="example: coinbt sweeps status TASK_ID --top 10",
    )
    _add_common(status)
    status.add_argument("task_id", metavar="ID")
    status.add_argument("--top", type=int, default=10, help="best rows to show (10)")
    status.set_defaults(func=_status)
    cancel = commands.add_parser(
        "cancel",
        help="cancel a queued or running sweep",
        description="Cancel a sweep (every chunk's process is stopped). Cancelling a cancelled "
        "sweep changes nothing; a completed or failed one cannot be cancelled (exit 2).",
        epilog="example: coinbt sweeps cancel TASK_ID",
    )
    _add_common(cancel)
    cancel.add_argument("task_id", metavar="ID")
    cancel.add_argument("--reason", default="cancelled by user")
    cancel.set_defaults(func=_cancel)


def submit_sweep(
    args: argparse.Namespace,
    grid: dict[str, list[Any]],
    fixed: dict[str, Any],
    rules: dict[str, str] | None,
) -> int:
    """``coinbt sweep ... --submit``: the sweep as a task on the server at ``--url`` (``fixed``:
    parameters held fixed; ``rules``: the conditions of a ``rules`` strategy)."""
    strategy = "rules" if rules is not None else args.strategy
    if not strategy:
        raise SpecError("give --strategy, or --entry and --exit for rules", field="--strategy")
    body: dict[str, Any] = {
        "strategy": strategy,
        "grid": grid,
        "params": fixed,
        "sort_by": args.sort,
        "descending": not args.ascending,
        "cash": args.cash,
        "fee_bps": args.fee_bps,
        "slippage_bps": args.slippage_bps,
        "fill": args.fill,
    }
    if rules is not None:
        body["rules"] = rules
    if args.timeout is not None:
        body["timeout_s"] = args.timeout
    if args.synthetic is not None:
        bars_text, _, seed_text = args.synthetic.partition(":")
        if not bars_text.isdigit() or (seed_text and not seed_text.isdigit()):
            raise SpecError(f"takes BARS[:SEED], got {args.synthetic!r}", field="--synthetic")
        synthetic: dict[str, Any] = {"bars": int(bars_text), "interval": args.interval or "1m"}
        if seed_text:
            synthetic["seed"] = int(seed_text)
        body["data"] = {"synthetic": synthetic}
    elif args.dataset is not None:
        body["data"] = {"dataset": args.dataset}
    else:
        raise SpecError(
            "a submitted sweep runs on the server's data: --synthetic or --dataset NAME "
            "(import a CSV there with POST /datasets first)",
            field="--data",
        )
    if args.walk_forward is not None:
        train, sep, test = args.walk_forward.partition(":")
        if not sep or not train or not test:
            raise SpecError(
                f"takes TRAIN:TEST durations like 180d:30d, got {args.walk_forward!r}",
                field="--walk-forward",
            )
        body["walk_forward"] = {"train": train, "test": test, "anchored": args.anchored}
    elif args.anchored:
        raise SpecError("needs --walk-forward", field="--anchored")
    client = ApiClient(args.url, args.token)
    task = client.call("POST", "/sweeps", body)
    if not args.wait:
        _print_task(task, args.json)
        return 0
    status = _follow(client, task["task_id"], False, quiet=True)
    sweep = _finished(client, task["task_id"])
    _print_sweep(sweep, args.json, args.top if args.top is not None else 10)
    return status


def _finished(client: ApiClient, task_id: str) -> dict[str, Any]:
    """The sweep once it ended, with its summary if it completed (whose artifact may take a
    moment to be stored: asked again for up to 30 s)."""
    path = f"/sweeps/{urllib.parse.quote(task_id)}"
    deadline = time.monotonic() + 30.0
    while True:
        sweep: dict[str, Any] = client.call("GET", path)
        if not sweep.get("sweep_pending") or time.monotonic() > deadline:
            return sweep
        time.sleep(0.2)


def _list(args: argparse.Namespace) -> int:
    return list_page(args, "/sweeps", "sweeps")


def _status(args: argparse.Namespace) -> int:
    sweep = _client(args).call("GET", f"/sweeps/{urllib.parse.quote(args.task_id)}")
    _print_sweep(sweep, args.json, args.top)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"reason": args.reason})
    sweep = _client(args).call("DELETE", f"/sweeps/{urllib.parse.quote(args.task_id)}?{query}")
    _print_task(sweep, args.json)
    return 0


def print_walk_forward(wf: dict[str, Any]) -> None:
    """A walk-forward's folds, stitched out-of-sample result and degradation, as text."""
    print(
        f"walk-forward {wf['train']} train / {wf['test']} test"
        f"{' (anchored)' if wf['anchored'] else ''}: {len(wf['folds'])} folds"
    )
    for fold in wf["folds"]:
        params = " ".join(f"{k}={v}" for k, v in fold["params"].items())
        print(
            f"  fold {fold['index']:>3}  {params:<24} in-sample sharpe "
            f"{_num(fold['in_sample'].get('sharpe'))}  out-of-sample sharpe "
            f"{_num(fold['out_of_sample'].get('sharpe'))}  return "
            f"{_num(fold['out_of_sample'].get('total_return'))}"
        )
    d = wf["degradation"]
    print(
        f"stitched out-of-sample: sharpe {_num(wf['metrics'].get('sharpe'))}, return "
        f"{_num(wf['metrics'].get('total_return'))}; in-sample sharpe (mean) "
        f"{_num(d['in_sample_sharpe'])}, OOS/IS sharpe {_num(d['sharpe_ratio'])}, "
        f"walk-forward efficiency {_num(d['efficiency'])}"
    )


def _print_sweep(sweep: dict[str, Any], as_json: bool, top: int) -> None:
    if as_json:
        print(json.dumps(sweep))
        return
    _print_task(sweep, False)
    summary = sweep.get("sweep")
    if not summary:
        return
    if summary["kind"] == "walk_forward":
        print_walk_forward(summary["walk_forward"])
        return
    print(
        f"{summary['evaluated']:,} combinations evaluated, {summary['skipped']:,} skipped; "
        f"best by {summary['sort_by']}:"
    )
    names = summary["params"]
    for i, row in enumerate(summary["best"][: max(0, top)], start=1):
        params = " ".join(f"{k}={row[k]}" for k in names)
        print(
            f"  {i:>3}. {params:<24} sharpe {_num(row.get('sharpe'))}  return "
            f"{_num(row.get('total_return'))}  max drawdown {_num(row.get('max_drawdown'))}"
        )
    dsr = summary.get("deflated_sharpe")
    if dsr:
        print(
            f"deflated Sharpe ratio of the best row: {_num(dsr['probability'])} "
            f"(probability its true Sharpe is above 0 after {dsr['trials']:,} trials; "
            "above 0.95 is evidence of an edge)"
        )


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)
