"""The code that runs inside a worker process: receive a job, run the engine, send the result.

The parent sends a ``Job`` (a msgpack map), a batch of small jobs ``["batch", [Job, ...]]`` or a
plain call ``["call", "module:function", args, bars]`` (a msgpack array: a sweep chunk, see
``coinbt.executor._calls``). Messages back are msgpack arrays: first ``["ready"]`` once the
process has imported the engine, then per request ``["progress", fraction]``,
``["done", JobResult or the call's value]``, ``["error", type, message]``; a batch answers
``["done", [outcome, ...]]``, one outcome per job in order: ``["ok", JobResult]`` or
``["error", type, message]`` (one job's failure does not stop the others; a batch sends no
progress). A run's artifact (its equity curve, fills and trades in one ``.npz``) is written
beside the job's ``out_dir``; only its path and hash (and the per-asset position summaries)
cross the pipe.
"""

from __future__ import annotations

import hashlib
import os
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from coinbt.errors import CoinbtError
from coinbt.events import PositionSummary
from coinbt.executor._calls import invoke
from coinbt.executor.base import Job, JobResult, ProducedArtifact

__all__ = ("child_main", "execute")

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder()
PROGRESS_EVERY_S = 0.05


def child_main(conn: Connection) -> None:
    """Serve jobs until the parent closes the pipe."""
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        request = _request_decoder.decode(data)
        global _last_progress
        _last_progress = time.monotonic()  # a job that ends within PROGRESS_EVERY_S sends none

        def progress(fraction: float) -> None:
            _progress(conn, fraction)

        try:
            if isinstance(request, list) and request[0] == "batch":  # ["batch", [Job, ...]]
                result: Any = [_outcome(job) for job in request[1]]
            elif isinstance(request, list):  # ["call", fn, args, bars]
                _, fn, args, bars = request
                result = invoke(fn, args, progress, bars)
            else:
                result = execute(msgspec.convert(request, Job), progress)
        except CoinbtError as e:
            message: list[Any] = ["error", e.code, str(e)]
        except Exception as e:
            message = ["error", type(e).__name__, str(e) or repr(e)]
        else:
            message = ["done", result]
        conn.send_bytes(_encoder.encode(message))


_last_progress = 0.0


def _outcome(request: Any) -> list[Any]:
    """One job of a batch: ``["ok", JobResult]`` or ``["error", type, message]``."""
    try:
        return ["ok", execute(msgspec.convert(request, Job))]
    except CoinbtError as e:
        return ["error", e.code, str(e)]
    except Exception as e:
        return ["error", type(e).__name__, str(e) or repr(e)]


def _progress(conn: Connection, fraction: float) -> None:
    global _last_progress
    now = time.monotonic()
    if fraction >= 1.0 or now - _last_progress < PROGRESS_EVERY_S:
        return  # the result itself says 100 %
    _last_progress = now
    conn.send_bytes(_encoder.encode(["progress", fraction]))


def execute(job: Job, progress: Any = None) -> JobResult:
    """Run one job in this process (also used directly by tests): the engine's result becomes
    one artifact, ``result`` (coinbt.engine.columns: an ``.npz`` of the equity, fills and trades
    tables, one file to write), and per-asset position summaries; nothing per fill crosses the
    pipe."""
    from coinbt.engine import BacktestSpec, ledger_of, run
    from coinbt.engine.columns import equity_array, fills_array, save_arrays, trades_array

    if job.plugin_sha256 is not None:
        _same_plugin(job.strategy, job.plugin_sha256)
    assets, bars = _bars_of(job)
    spec = BacktestSpec(
        strategy=job.strategy,
        params=dict(job.params),
        cash=job.cash,
        fee_bps=job.fee_bps,
        slippage_bps=job.slippage_bps,
        fill=job.fill,
        rules=job.rules,
        direction=job.direction,
        sl_stop=job.sl_stop,
        tp_stop=job.tp_stop,
        sl_trail=job.sl_trail,
        size=job.size,
        size_type=job.size_type,
    )
    result = run(spec, assets, progress=progress)
    book = ledger_of(result)
    symbols = _symbols(result.symbols, job.symbol)
    positions = [
        PositionSummary(
            symbol=symbols[i],
            qty=p.qty,
            avg_entry_price=p.avg_entry_price,
            realized_pnl=p.realized_pnl,
            unrealized_pnl=p.unrealized_pnl,
            fees=p.fees,
            trades=p.trades,
            last_close=p.last_close,
        )
        for i, p in enumerate(book.positions)
    ]
    out = Path(job.out_dir)  # the file is <out_dir>-result.npz: no directory per job
    ts = bars.ts
    tables = {
        "equity": equity_array(ts, result.equity),
        "fills": fills_array(result.fills),
        "trades": trades_array(book.trades, lambda index: ts[index]),
    }
    return JobResult(
        positions=positions,
        num_fills=len(result.fills),
        metrics=dict(result.metrics),
        result_digest=result.digest(),
        final_equity=float(result.final_equity),
        last_close=float(result.last_close),
        bars=len(bars),
        artifacts={"result": _save(out.with_name(f"{out.name}-result.npz"), save_arrays(tables))},
    )


def _bars_of(job: Job) -> tuple[Any, Any]:
    """What to run on (one asset's bars, or a portfolio: symbol -> bars, aligned) and the bars
    whose timestamps the equity curve follows."""
    from coinbt.engine import load_bars, synthetic, synthetic_portfolio
    from coinbt.engine.portfolio import align

    if job.synthetic is not None:
        s = job.synthetic
        if s.symbols > 1:
            many = synthetic_portfolio(
                s.bars, s.symbols, seed=s.seed, interval=s.interval, start_price=s.start_price
            )
            return many, next(iter(many.values()))
        bars = synthetic(s.bars, seed=s.seed, interval=s.interval, start_price=s.start_price)
        return bars, bars
    if job.datasets:
        loaded = {
            symbol: load_bars(path).slice(job.start_ms, job.end_ms) for symbol, path in job.datasets
        }
        symbols, aligned = align(loaded)
        return dict(zip(symbols, aligned, strict=True)), aligned[0]
    assert job.dataset_path is not None
    bars = load_bars(job.dataset_path).slice(job.start_ms, job.end_ms)
    return bars, bars


def _same_plugin(name: str, recorded: str) -> None:
    """The plugin this process would run is the code ``Queued`` recorded (its module's sha256);
    ``StrategyError`` otherwise, so a result never comes from code the log does not name."""
    from coinbt.engine.strategies import find_strategy
    from coinbt.errors import StrategyError

    strategy = find_strategy(name)
    found = None if strategy is None else strategy.provenance.get("sha256")
    if found != recorded:
        raise StrategyError(
            f"plugin strategy {name!r} changed since the task was queued: its module's sha256 is "
            f"{found or 'unknown (not found here)'}, the task recorded {recorded}"
        )


def _symbols(names: tuple[str, ...], symbol: str) -> tuple[str, ...]:
    """The run's asset names; an unnamed single asset is the job's symbol."""
    if len(names) == 1 and not names[0]:
        return (symbol,)
    return names


def _save(path: Path, data: bytes) -> ProducedArtifact:
    """Write ``data`` to ``path`` with plain system calls (no buffered file object: ~7 us less
    per tiny run); a write may take fewer bytes than given (at most ~2 GiB on Linux), so loop."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return ProducedArtifact(
        path=os.fspath(path), sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )


PARENT_CHECK_S = 0.5


def _die_with_parent(parent: int) -> None:
    """Exit when the service (process ``parent``) dies, even by SIGKILL, so an orphaned backtest
    never keeps burning a core. On Linux the kernel kills this process then (PR_SET_PDEATHSIG);
    that only covers a death after the call, so the parent is checked once more right after it.
    Elsewhere, or if the call fails, a watchdog thread checks every ``PARENT_CHECK_S`` whether
    this process was re-parented (its parent gone), busy backtest or not."""
    import ctypes
    import signal
    import sys
    import threading

    watched = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            watched = libc.prctl(1, int(signal.SIGKILL)) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the kernel watched it
        os._exit(1)
    if not watched:
        threading.Thread(
            target=_watch_parent, args=(parent,), name="coinbt-parent", daemon=True
        ).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def _warm_up() -> None:
    """Import what a backtest needs before the first job comes (the engine, its strategies and
    tables: about 0.2 s), so a fresh worker process's first job does not pay for it."""
    import coinbt.engine
    import coinbt.engine.columns  # noqa: F401


def _lower_priority() -> None:
    """Backtests are batch work: at a lower CPU priority (nice 10) they take whatever the service
    leaves, so the API answers fast even when every core runs a backtest (scripts/bench_api.py)."""
    try:
        os.nice(10)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    import sys

    _die_with_parent(int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid())
    _lower_priority()
    _warm_up()
    parent = Connection(int(sys.argv[1]))
    parent.send_bytes(_encoder.encode(["ready"]))  # the executor hands this process out now
    child_main(parent)
