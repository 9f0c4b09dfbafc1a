"""Downloads of a completed task's results: ``GET /backtests/{id}/{fills,trades,equity}?format=``
``csv`` or ``parquet`` (the whole table, not a page), and its tear sheet ``GET
/backtests/{id}/report`` (one self-contained HTML file).

Without ``format`` the paths keep their JSON answers (``Exports.or_json`` routes between them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coinbt.api._params import optional_int_param, task_id_param
from coinbt.api._results import Outcome, load_assets, load_outcome
from coinbt.errors import CoinbtError, InvalidRequestError
from coinbt.events import TaskSpec
from coinbt.report import tables
from coinbt.runtime import System

__all__ = ("WHAT", "Exports")

WHAT = ("fills", "trades", "equity")
# The tear sheet is one file with its CSS inline and no script: it needs inline styles and
# nothing else (the guard's default policy allows only the server's own style files).
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
Handler = Callable[[Request], Awaitable[Response]]
PAGING = (("offset", 0, 2**62), ("limit", 1, 1000), ("points", 0, 100_000))


def _table(outcome: Outcome, what: str) -> tables.Table:
    if what == "fills":
        return tables.fills_table(outcome.fills, outcome.symbols)
    if what == "trades":
        return tables.trades_table(outcome.trades(), outcome.ts, outcome.symbols)
    return tables.equity_table(outcome.ts, outcome.equity)


class Exports:
    def __init__(self, system: System) -> None:
        self.system = system

    def or_json(self, what: str, json_handler: Handler | None) -> Handler:
        """The handler of ``/backtests/{id}/<what>``: an export when ``format`` is given, else
        ``json_handler`` (or 400 naming ``format`` when there is no JSON answer)."""

        async def handle(request: Request) -> Response:
            if "format" in request.query_params or json_handler is None:
                return await self.export(request, what)
            return await json_handler(request)

        return handle

    async def export(self, request: Request, what: str) -> Response:
        task_id = task_id_param(request)
        # The JSON answer's paging means nothing to an export (it holds every row), but a
        # malformed value is still a 400 naming it.
        for name, low, high in PAGING:
            optional_int_param(request, name, minimum=low, maximum=high)
        fmt = request.query_params.get("format", "")
        if fmt not in tables.FORMATS:
            raise InvalidRequestError(f"must be one of {', '.join(tables.FORMATS)}", field="format")
        if fmt == "parquet":  # before any work: a missing extra is the answer whatever the task
            tables.encode((), "parquet")
        outcome = await load_outcome(self.system, task_id)
        body = await anyio.to_thread.run_sync(lambda: tables.encode(_table(outcome, what), fmt))
        return Response(
            body,
            media_type=tables.MEDIA_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{task_id}-{what}.{fmt}"'},
        )

    async def report(self, request: Request) -> Response:
        from coinbt.report.tearsheet import Provenance, ReportData, render

        task_id = task_id_param(request)
        outcome = await load_outcome(self.system, task_id)
        assets = await load_assets(self.system, outcome.view)
        bars = assets[0][1]
        stored = outcome.completed
        spec = outcome.view.spec
        provenance = Provenance(
            task_id=task_id,
            spec=spec_builtins(spec),
            data=await data_description(self.system, spec),
            strategy_source=recorded_source(spec),
            result_digest=outcome.event.result_digest,
            log_position=stored.position,
            event_hash=stored.hash,
            recorded_at=stored.recorded_at.isoformat(),
        )

        def build() -> str:
            data = ReportData(
                title=f"coinbt {task_id}: {spec.strategy}",
                ts=outcome.ts,
                equity=outcome.equity,
                close=bars.close,
                interval_ms=bars.interval_ms,
                cash=spec.cash,
                fee_rate=spec.fee_bps / 10_000,
                metrics=dict(outcome.event.metrics),
                trades=outcome.trades(),
                symbols=outcome.symbols,
                provenance=provenance,
                closes=tuple(b.close for _, b in assets),
            )
            return render(data)

        html = await anyio.to_thread.run_sync(build)
        return Response(
            html.encode(),
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Disposition": f'inline; filename="{task_id}-report.html"',
                "Content-Security-Policy": REPORT_CSP,
            },
        )


def recorded_source(spec: TaskSpec) -> str:
    """Which code produced the result: what the server recorded at submission (``spec.source``),
    then the rules' text, or a built-in strategy's code."""
    from coinbt.report.tearsheet import strategy_source

    lines = []
    source = spec.source
    if source is not None:
        fields = msgspec.to_builtins(source)
        lines.append("recorded at submission: " + ", ".join(f"{k} {v}" for k, v in fields.items()))
    rules = msgspec.to_builtins(spec.rules) if getattr(spec, "rules", None) else None
    if rules:
        lines.append("rules:\n" + "\n".join(f"  {k}: {v}" for k, v in rules.items() if v))
        return "\n\n".join(lines)
    if source is None or source.kind == "builtin":
        lines.append(strategy_source(spec.strategy))
    return "\n\n".join(lines) or spec.strategy


def spec_builtins(spec: object) -> dict[str, object]:
    out: dict[str, object] = msgspec.to_builtins(spec)
    return out


async def data_description(system: System, spec: TaskSpec) -> str:
    """The data a task ran on: the synthetic parameters, or each dataset's name, version, range
    and the sha256 of its bars file (from the catalogue, retired ones included)."""
    data = spec.data
    if data.synthetic is not None:
        s = data.synthetic
        assets = f", {s.symbols} assets" if s.symbols > 1 else ""
        return (
            f"synthetic: {s.bars:,} bars of {s.interval}, seed {s.seed}{assets}, "
            f"start price {s.start_price:g}"
        )
    rng = ""
    if data.start is not None or data.end is not None:
        start = data.start.isoformat() if data.start else "the start"
        end = data.end.isoformat() if data.end else "the end"
        rng = f", {start} to {end}"
    names = list(data.datasets or ([data.dataset] if data.dataset else []))
    parts = []
    for name in names:
        version = data.version if len(names) == 1 else None
        try:
            info = await system.catalog.get(name, version, include_retired=True)
        except CoinbtError:
            parts.append(f"dataset {name} (no longer in the catalogue)")
            continue
        parts.append(f"dataset {info.name} v{info.version} (bars file sha256 {info.sha256})")
    return "; ".join(parts) + rng
