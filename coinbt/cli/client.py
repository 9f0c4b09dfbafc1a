"""Client commands for a running server: ``submit``, ``status``, ``list``, ``cancel``, ``watch``.

Standard library only (urllib): the client needs nothing the server does not already install.
The server is ``--url`` (default ``$COINBT_URL`` or http://127.0.0.1:8000); the token comes from
``$COINBT_API_TOKEN`` (or ``--token``). API errors print the server's message and the fields it
names, and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from coinbt import defaults
from coinbt.errors import CoinbtError

__all__ = ("ApiClient", "StatusChoices", "add_common", "client_of", "list_page", "register")

DEFAULT_URL = defaults.URL


class StatusChoices:
    """``--status`` choices: the names of ``coinbt.lifecycle.Status``, imported when argparse
    first checks or lists them, so building the parser imports no msgspec (``scripts/migrate``
    runs ``coinbt migrate`` on a bare python3)."""

    def _names(self) -> list[str]:
        from coinbt.lifecycle import Status

        return [str(status) for status in Status]

    def __contains__(self, value: object) -> bool:
        return value in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


class ClientError(CoinbtError):
    """The server answered with an error, or could not be reached."""

    code = "client_error"


class ApiClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib.request.Request:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        return request

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        try:
            with urllib.request.urlopen(
                self._request(method, path, data, headers), timeout=self.timeout
            ) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ClientError(_describe(e)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError(f"cannot reach coinbt at {self.url}: {reason}") from None

    def upload(self, path: str, body: BinaryIO, size: int, content_type: str) -> Any:
        """POST a file, streamed from ``body`` (``size`` bytes); the decoded JSON answer."""
        request = self._request(
            "POST", path, headers={"Content-Type": content_type, "Content-Length": str(size)}
        )
        request.data = body
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ClientError(_describe(e)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError(f"cannot reach coinbt at {self.url}: {reason}") from None

    def download(self, path: str) -> bytes:
        """The raw body of ``GET path`` (an export, a report)."""
        try:
            with urllib.request.urlopen(self._request("GET", path), timeout=self.timeout) as r:
                body: bytes = r.read()
                return body
        except urllib.error.HTTPError as e:
            raise ClientError(_describe(e)) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError(f"cannot reach coinbt at {self.url}: {reason}") from None

    def stream(self, path: str) -> Iterator[tuple[str, Any]]:
        """Server-sent events as (event name, decoded data)."""
        request = self._request("GET", path, headers={"Accept": "text/event-stream"})
        try:
            response = urllib.request.urlopen(request, timeout=None)
        except urllib.error.HTTPError as e:
            raise ClientError(_describe(e)) from None
        except (urllib.error.URLError, OSError) as e:
            raise ClientError(f"cannot reach coinbt at {self.url}: {e}") from None
        with response:
            name: str = "message"
            data: list[str] = []
            for raw in response:
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        yield name, json.loads("\n".join(data))
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())


def _describe(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {error.code} {error.reason}"
    message = f"{body.get('message')} (HTTP {error.code})"
    details = body.get("details")
    if isinstance(details, list):
        message += "".join(f"\n  {d.get('field')}: {d.get('message')}" for d in details)
    return message


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(args.url, args.token or os.environ.get("COINBT_API_TOKEN"))


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("COINBT_URL", DEFAULT_URL),
        help=f"the server (default: $COINBT_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--token", help="API token (default: $COINBT_API_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def client_of(args: argparse.Namespace) -> ApiClient:
    """The client for ``--url`` and ``--token`` (or ``$COINBT_API_TOKEN``), for other modules'
    client commands."""
    return _client(args)


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``, for other modules' client commands."""
    parser.add_argument(
        "--url",
        default=os.environ.get("COINBT_URL", DEFAULT_URL),
        help=f"the server (default: $COINBT_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--token", help="API token (default: $COINBT_API_TOKEN)")


def register(subparsers: Any) -> None:
    submit = subparsers.add_parser(
        "submit",
        help="submit a backtest to a running server",
        description=(
            "Submit a backtest. Either give a whole JSON spec with --spec FILE (or - for stdin), "
            "or build one from flags. Prints the new task; --wait follows it to the end."
        ),
        epilog=(
            "examples:\n"
            "  coinbt submit --strategy sma_cross -p fast=10 -p slow=30 --synthetic 100000:1\n"
            "  coinbt submit --strategy ema_cross --dataset BTCUSDT-1m --start 2024-01-01T00:00Z\n"
            '  coinbt submit --synthetic 100000 -p n=20 --entry "close > sma(close, n)" '
            '--exit "close < sma(close, n)"\n'
            "  coinbt submit --spec spec.json --idempotency-key nightly-2024-06-01 --wait\n"
            "  coinbt submit --batch specs.json   # a JSON array of up to 1,000 specs, one append"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(submit)
    submit.add_argument("--spec", help="a JSON spec file, or - for stdin")
    submit.add_argument(
        "--batch",
        metavar="FILE",
        help="a JSON array of specs (or - for stdin): all validated, then queued together",
    )
    submit.add_argument("--strategy", help="strategy name (see GET /strategies)")
    for flag in ("--entry", "--exit", "--short-entry", "--short-exit"):
        submit.add_argument(
            flag, metavar="RULE", help="a rule (implies --strategy rules; docs/strategies.md)"
        )
    submit.add_argument(
        "-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="a parameter"
    )
    data = submit.add_mutually_exclusive_group()
    data.add_argument("--synthetic", metavar="BARS[:SEED]", help="synthetic data")
    data.add_argument("--dataset", help="an imported dataset's name")
    submit.add_argument("--interval", default="1m", help="synthetic bar interval (1m)")
    submit.add_argument(
        "--start", help="dataset range start: ISO-8601 (2024-01-01, 2024-01-01T12:30, +02:00; UTC)"
    )
    submit.add_argument("--end", help="dataset range end, the same forms (exclusive)")
    submit.add_argument("--cash", type=float)
    submit.add_argument("--fee-bps", type=float)
    submit.add_argument("--slippage-bps", type=float)
    submit.add_argument("--fill", choices=["next_open", "close"])
    submit.add_argument("--timeout", type=float, help="seconds before the run is stopped")
    submit.add_argument("--idempotency-key", help="the same key returns the same task")
    submit.add_argument("--wait", action="store_true", help="watch the task until it ends")
    submit.set_defaults(func=_submit)

    status = subparsers.add_parser(
        "status",
        help="show one task",
        description="Show one task: status, strategy and parameters, progress, result.",
        epilog="example: coinbt status 3f2a... --url http://127.0.0.1:8000",
    )
    _add_common(status)
    status.add_argument("task_id", metavar="ID")
    status.set_defaults(func=_status)

    lst = subparsers.add_parser(
        "list",
        help="list tasks, newest first",
        description="List tasks, newest first: status, strategy and parameters, return, Sharpe.",
        epilog="example: coinbt list --status completed --limit 10",
    )
    _add_common(lst)
    lst.add_argument(
        "--status", choices=StatusChoices(), metavar="STATUS", help="one of %(choices)s"
    )
    lst.add_argument("--limit", type=int, default=20, help="how many (20)")
    lst.set_defaults(func=_list)

    cancel = subparsers.add_parser(
        "cancel",
        help="cancel a queued or running task",
        description=(
            "Cancel a task. Queued and running tasks become cancelled at once (a running one's "
            "process is stopped); cancelling a cancelled task changes nothing; a completed or "
            "failed task cannot be cancelled (exit 2)."
        ),
        epilog='example: coinbt cancel 3f2a... --reason "wrong parameters"',
    )
    _add_common(cancel)
    cancel.add_argument("task_id", metavar="ID")
    cancel.add_argument("--reason", default="cancelled by user")
    cancel.set_defaults(func=_cancel)

    watch = subparsers.add_parser(
        "watch",
        help="follow a task with a live progress bar until it ends",
        description="Follow a task live (server-sent events) until it completes, fails or is "
        "cancelled. Exit 0 if it completed, 1 otherwise.",
        epilog="example: coinbt watch 3f2a... --url http://127.0.0.1:8000",
    )
    _add_common(watch)
    watch.add_argument("task_id", metavar="ID")
    watch.set_defaults(func=_watch)


def _parse_value(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.spec:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClientError(f"--spec is not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise ClientError("--spec must hold a JSON object")
        return loaded
    rules = {
        key: getattr(args, key)
        for key in ("entry", "exit", "short_entry", "short_exit")
        if getattr(args, key, None) is not None
    }
    if rules and not args.strategy:
        args.strategy = "rules"
    if not args.strategy:
        raise ClientError("give --strategy (and data: --synthetic or --dataset), or --spec")
    params: dict[str, Any] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"-p takes KEY=VALUE, got {item!r}")
        params[key] = _parse_value(value)
    spec: dict[str, Any] = {"strategy": args.strategy, "params": params}
    if rules:
        spec["rules"] = rules
    if args.synthetic:
        bars, _, seed = args.synthetic.partition(":")
        if not bars.isdigit() or (seed and not seed.isdigit()):
            raise ClientError(f"--synthetic takes BARS[:SEED], got {args.synthetic!r}")
        synthetic: dict[str, Any] = {"bars": int(bars), "interval": args.interval}
        if seed:
            synthetic["seed"] = int(seed)
        spec["data"] = {"synthetic": synthetic}
    elif args.dataset:
        spec["data"] = {
            "dataset": args.dataset,
            "start": iso_time(args.start, "--start"),
            "end": iso_time(args.end, "--end"),
        }
    else:
        raise ClientError("give the data: --synthetic BARS[:SEED] or --dataset NAME")
    for flag, field in (
        ("cash", "cash"),
        ("fee_bps", "fee_bps"),
        ("slippage_bps", "slippage_bps"),
        ("fill", "fill"),
        ("timeout", "timeout_s"),
    ):
        value = getattr(args, flag)
        if value is not None:
            spec[field] = value
    return spec


def _print_task(task: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(task))
        return
    line = f"{task['task_id']}  {task['status']:<9}  attempt {task['attempt']}"
    spec = task.get("spec") or {}
    if spec.get("strategy"):
        params = ",".join(f"{k}={v}" for k, v in sorted((spec.get("params") or {}).items()))
        line += f"  {spec['strategy']}({params})"
    from coinbt.lifecycle import Status

    if task["status"] == Status.RUNNING:
        line += f"  {task['progress']:.0%}"
    if task.get("error"):
        line += f"  error: {task['error']}"
    if task.get("reason"):
        line += f"  reason: {task['reason']}"
    result = task.get("result")
    if result:
        metrics = result["metrics"]
        line += (
            f"  return {metrics.get('total_return', 0):+.2%}"
            f"  sharpe {_number(metrics.get('sharpe'))}"
            f"  max drawdown {metrics.get('max_drawdown', 0):.2%}"
            f"  trades {metrics.get('num_trades')}"
        )
    print(line)


def _number(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.2f}"


def iso_time(text: str | None, flag: str) -> str | None:
    """An ISO-8601 time as the API takes it (RFC 3339, UTC): a date (``2024-01-01``), minutes
    (``2024-01-01T12:30``, or with a space), seconds and fractions, with ``Z`` or an offset
    (``+02:00``); no zone means UTC. ``ClientError`` naming ``flag`` otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClientError(
            f"{flag}: not an ISO-8601 time: {text!r} (like 2024-01-01, 2024-01-01T12:30 or "
            "2024-01-01T12:30:00+02:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _submit(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.batch:
        return _submit_batch(client, args)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    task = client.call("POST", "/backtests", _spec_from_args(args), headers)
    _print_task(task, args.json)
    if args.wait:
        return _follow(client, task["task_id"], args.json)
    return 0


def _submit_batch(client: ApiClient, args: argparse.Namespace) -> int:
    if args.spec or args.strategy or args.idempotency_key:
        raise ClientError(
            "--batch takes the whole specs from its file: drop --spec, --strategy "
            "and --idempotency-key"
        )
    text = sys.stdin.read() if args.batch == "-" else _read(args.batch)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClientError(f"--batch is not valid JSON: {e}") from None
    if not isinstance(loaded, list):
        raise ClientError("--batch must hold a JSON array of specs")
    tasks = client.call("POST", "/backtests", loaded)["tasks"]
    if args.json:
        print(json.dumps({"tasks": tasks}))
    else:
        for task in tasks:
            _print_task(task, False)
    if not args.wait:
        return 0
    statuses = [_follow(client, task["task_id"], args.json) for task in tasks]
    return max(statuses)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ClientError(f"cannot read {path}: {e.strerror}") from None


def _status(args: argparse.Namespace) -> int:
    task = _client(args).call("GET", f"/backtests/{urllib.parse.quote(args.task_id)}")
    _print_task(task, args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    return list_page(args, "/backtests", "tasks")


def list_page(args: argparse.Namespace, path: str, key: str) -> int:
    """``coinbt list`` and ``coinbt sweeps list``: one page of ``path`` (``--limit``,
    ``--status``), its ``key`` list printed a line each, or the page as JSON."""
    query = {"limit": str(args.limit)}
    if args.status:
        query["status"] = args.status
    page = _client(args).call("GET", f"{path}?{urllib.parse.urlencode(query)}")
    if args.json:
        print(json.dumps(page))
        return 0
    for item in page[key]:
        _print_task(item, False)
    if not page[key]:
        print(f"no {key}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"reason": args.reason})
    task = _client(args).call("DELETE", f"/backtests/{urllib.parse.quote(args.task_id)}?{query}")
    _print_task(task, args.json)
    return 0


def _watch(args: argparse.Namespace) -> int:
    return _follow(_client(args), args.task_id, args.json)


def _follow(client: ApiClient, task_id: str, as_json: bool, *, quiet: bool = False) -> int:
    """Follow a task to its end (a progress bar on stderr); print it unless ``quiet``. Exit
    status 0 if it completed, else 1."""
    path = f"/backtests/{urllib.parse.quote(task_id)}"
    after = client.call("GET", "/health")["projected_position"]
    task = client.call("GET", path)
    bar = _Bar(sys.stderr)
    from coinbt.lifecycle import TERMINAL, Status

    if task["status"] not in TERMINAL:
        bar.show(task["status"], task["progress"])
        for name, data in client.stream(f"/events?after={after}"):
            if name == "progress" and data["task_id"] == task_id:
                bar.show(Status.RUNNING, data["progress"])
            elif name == "message" and data["stream_id"] == task_id:
                if data["type"] in ("Completed", "Failed", "Cancelled"):
                    break
                if data["type"] in ("Started", "Queued"):
                    bar.show(Status.RUNNING if data["type"] == "Started" else Status.QUEUED, 0.0)
        task = client.call("GET", path)
    bar.done()
    if not quiet:
        _print_task(task, as_json)
    return 0 if task["status"] == Status.COMPLETED else 1


class _Bar:
    """A one-line progress bar on a terminal; plain lines on status changes otherwise."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last: tuple[str, int] | None = None

    def show(self, status: str, progress: float) -> None:
        percent = int(progress * 100)
        if self.last == (status, percent):
            return
        if self.tty:
            filled = percent * 30 // 100
            self.out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {status:<9}")
            self.out.flush()
        elif self.last is None or self.last[0] != status:
            self.out.write(f"{status}\n")
        self.last = (status, percent)

    def done(self) -> None:
        if self.tty and self.last is not None:
            self.out.write("\n")
