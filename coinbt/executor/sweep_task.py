"""Running a sweep task (a spec with ``sweep``) on the service's executor.

A grid sweep is split across the executor's worker processes (or Dask workers) with
:func:`~coinbt.executor.sweeps.sweep_on`; the best row is then run once more in a worker for the
deflated Sharpe ratio. A walk-forward runs in one worker (its folds depend on each other only
through their order, and each fold is a sweep of its own). The result is a ``JobResult`` like a
backtest's, so the Worker reports it the same way: no fills; ``metrics`` holds the best row's
metrics (walk-forward: the stitched out-of-sample ones) with the sweep's own numbers; the
artifacts are

- ``rows``: the full table as CSV (one row per combination, parameters then every metric; for a
  walk-forward, one row per fold);
- ``summary``: JSON with the best rows, the skip reasons, the deflated Sharpe ratio and, for a
  walk-forward, every fold and the degradation;
- ``equity`` (walk-forward only): the stitched out-of-sample equity, as a backtest's curve.

Cancelling the caller stops every chunk (the executor kills their processes).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import msgspec

from coinbt.engine.sweep import TRADING_GRID
from coinbt.errors import CoinbtError
from coinbt.events import SyntheticSpec, TaskSpec
from coinbt.executor.base import JobError, JobResult, ProducedArtifact
from coinbt.specs import DataPlan

__all__ = ("BEST_ROWS", "run_sweep_task")

BEST_ROWS = 100
"""How many of the best rows the summary holds (the whole table is the ``rows`` artifact)."""

_FINISH_SHARE = 0.97  # of the progress bar: the chunks; the rest is the deflated Sharpe and files


async def run_sweep_task(
    executor: Any,
    task_id: str,
    spec: TaskSpec,
    plan: DataPlan,
    out: Path,
    progress: Callable[[float], None],
) -> JobResult:
    """Run the sweep ``spec`` (validated at submission); ``JobError`` if it fails."""
    if not hasattr(executor, "run_call") or not hasattr(executor, "stage_bars"):
        raise JobError("unsupported", "this executor cannot run sweeps")
    try:
        return await _run(executor, task_id, spec, plan, out, progress)
    except JobError:
        raise
    except CoinbtError as e:  # the data changed since the submission, say
        raise JobError(e.code, str(e)) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise JobError(type(e).__name__, str(e) or repr(e)) from e


async def _run(
    executor: Any,
    task_id: str,
    spec: TaskSpec,
    plan: DataPlan,
    out: Path,
    progress: Callable[[float], None],
) -> JobResult:
    from coinbt.sweeps import sweep_grid, trading_of

    assert spec.sweep is not None
    options = spec.sweep
    grid = sweep_grid(spec, max_combinations=2**62)  # checked against the limit at submission
    data = await _data(spec, plan)
    rules = (
        None
        if spec.rules is None
        else {k: v for k, v in msgspec.structs.asdict(spec.rules).items() if v is not None}
    )
    costs: dict[str, Any] = {
        "cash": spec.cash,
        "fee_bps": spec.fee_bps,
        "slippage_bps": spec.slippage_bps,
        "fill": spec.fill,
    }
    synthetic = _synthetic_args(data)
    staging: AbstractAsyncContextManager[Any] = (
        nullcontext(None) if synthetic else executor.stage_bars(data)
    )
    if options.walk_forward is not None:
        wf = options.walk_forward
        equity_path = out.with_name(f"{out.name}-equity.npy")
        args = {
            "strategy": spec.strategy,
            "grid": grid,
            "train": wf.train,
            "test": wf.test,
            "anchored": wf.anchored,
            "sort_by": options.sort_by,
            "descending": options.descending,
            "equity_path": str(equity_path),
            "rules": rules,
            **costs,
            **synthetic,
        }
        async with staging as staged:
            report = await executor.run_call(
                f"{task_id}-walk-forward",
                "coinbt.executor._sweep_chunk:run_walk_forward",
                args,
                progress,
                bars=staged,
            )
        equity = ProducedArtifact(
            path=str(equity_path), sha256=report["equity_sha256"], size=report["equity_size"]
        )
        return await anyio.to_thread.run_sync(
            _walk_forward_result, spec, report, out, equity, plan.bars
        )

    from coinbt.executor.sweeps import sweep_on

    table = await sweep_on(
        executor,
        spec.strategy,
        grid,
        data,
        sort_by=options.sort_by,
        descending=options.descending,
        progress=lambda fraction: progress(fraction * _FINISH_SHARE),
        name=f"{task_id}-sweep",
        rules=rules,
        trading=trading_of(spec),
        **costs,
    )
    best = table.rows[0]
    async with staging as staged:
        dsr = await executor.run_call(
            f"{task_id}-deflate",
            "coinbt.executor._sweep_chunk:deflate_best",
            {
                "strategy": spec.strategy,
                "params": {
                    name: best[name] for name in table.param_names if name not in TRADING_GRID
                },
                "trading": trading_of(spec),
                "trading_values": {k: best[k] for k in table.param_names if k in TRADING_GRID},
                "sharpes": [row["sharpe"] for row in table.rows],
                "rules": rules,
                **costs,
                **synthetic,
            },
            lambda _: None,
            bars=staged,
        )
    combinations = math.prod(len(values) for values in grid.values())
    return await anyio.to_thread.run_sync(
        _sweep_result, spec, table, dsr or None, combinations, out, plan.bars
    )


async def _data(spec: TaskSpec, plan: DataPlan) -> Any:
    if spec.data.synthetic is not None:
        return spec.data.synthetic
    assert plan.dataset_path is not None
    path = plan.dataset_path

    def load() -> Any:
        from coinbt.engine import load_bars

        return load_bars(path).slice(plan.start_ms, plan.end_ms)

    return await anyio.to_thread.run_sync(load)


def _synthetic_args(data: Any) -> dict[str, Any]:
    if not isinstance(data, SyntheticSpec):
        return {}
    return {
        "synthetic": {
            "bars": data.bars,
            "seed": data.seed,
            "interval": data.interval,
            "start_price": data.start_price,
        }
    }


def _sweep_result(
    spec: TaskSpec,
    table: Any,
    dsr: dict[str, Any] | None,
    combinations: int,
    out: Path,
    bars: int,
) -> JobResult:
    names = list(table.param_names)
    metric_names = [k for k in table.rows[0] if k not in names]
    rows_artifact = _write_csv(out, "rows", names + metric_names, table.rows)
    best = table.rows[0]
    summary = {
        "kind": "grid",
        "strategy": table.strategy,
        "params": names,
        "metrics": metric_names,
        "sort_by": table.sort_by,
        "descending": table.descending,
        "combinations": combinations,
        "evaluated": table.evaluated,
        "skipped": table.skipped,
        "skip_reasons": dict(table.skip_reasons),
        "best": [dict(row) for row in table.rows[:BEST_ROWS]],
        "deflated_sharpe": dsr,
        "walk_forward": None,
    }
    summary_artifact, digest = _write_json(out, summary, rows_artifact.sha256)
    metrics: dict[str, float | int | None] = {k: best[k] for k in metric_names}
    metrics.update(
        combinations=combinations,
        evaluated=table.evaluated,
        skipped=table.skipped,
        deflated_sharpe=None if dsr is None else dsr.get("probability"),
    )
    return JobResult(
        metrics=metrics,
        result_digest=digest,
        final_equity=float(best.get("final_equity") or 0.0),
        last_close=0.0,
        bars=bars,
        artifacts={"rows": rows_artifact, "summary": summary_artifact},
    )


def _walk_forward_result(
    spec: TaskSpec, report: dict[str, Any], out: Path, equity: ProducedArtifact, bars: int
) -> JobResult:
    folds = report["folds"]
    params = sorted({name for fold in folds for name in fold["params"]})
    in_names = sorted({k for fold in folds for k in fold["in_sample"]})
    out_names = sorted({k for fold in folds for k in fold["out_of_sample"]})
    columns = [
        "fold",
        "train_start_ms",
        "test_start_ms",
        "test_end_ms",
        *params,
        *(f"is_{k}" for k in in_names),
        *(f"oos_{k}" for k in out_names),
    ]
    rows = [
        {
            "fold": fold["index"],
            "train_start_ms": fold["train_start_ms"],
            "test_start_ms": fold["test_start_ms"],
            "test_end_ms": fold["test_end_ms"],
            **fold["params"],
            **{f"is_{k}": v for k, v in fold["in_sample"].items()},
            **{f"oos_{k}": v for k, v in fold["out_of_sample"].items()},
        }
        for fold in folds
    ]
    rows_artifact = _write_csv(out, "rows", columns, rows)
    assert spec.sweep is not None
    assert spec.sweep.walk_forward is not None
    summary = {
        "kind": "walk_forward",
        "strategy": report["strategy"],
        "params": params,
        "metrics": [f"is_{k}" for k in in_names] + [f"oos_{k}" for k in out_names],
        "sort_by": report["sort_by"],
        "descending": spec.sweep.descending,
        "best": rows,
        "deflated_sharpe": None,
        "walk_forward": {
            "train": spec.sweep.walk_forward.train,
            "test": spec.sweep.walk_forward.test,
            "anchored": report["anchored"],
            "folds": folds,
            "metrics": report["metrics"],
            "degradation": report["degradation"],
        },
    }
    summary_artifact, digest = _write_json(out, summary, rows_artifact.sha256, equity.sha256)
    metrics: dict[str, float | int | None] = dict(report["metrics"])
    metrics.update(report["degradation"])
    metrics["folds"] = len(folds)
    return JobResult(
        metrics=metrics,
        result_digest=digest,
        final_equity=float(report["metrics"].get("final_equity") or 0.0),
        last_close=0.0,
        bars=bars,
        artifacts={"rows": rows_artifact, "summary": summary_artifact, "equity": equity},
    )


def _write_csv(
    out: Path, name: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> ProducedArtifact:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return _write(out.with_name(f"{out.name}-{name}.csv"), buffer.getvalue().encode())


def _write_json(out: Path, summary: dict[str, Any], *hashes: str) -> tuple[ProducedArtifact, str]:
    """The summary artifact, and the result digest: the sha256 of the summary's bytes and the
    other artifacts' hashes (so it covers the whole result)."""
    data = json.dumps(summary, sort_keys=True, allow_nan=False).encode()
    artifact = _write(out.with_name(f"{out.name}-summary.json"), data)
    digest = hashlib.sha256(b"coinbt.sweep.v1\n" + data + "".join(hashes).encode()).hexdigest()
    return artifact, digest


def _write(path: Path, data: bytes) -> ProducedArtifact:
    path.write_bytes(data)
    return ProducedArtifact(path=str(path), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
