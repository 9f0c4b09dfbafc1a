"""The Starlette application: routes, the token check, error handling, health and metrics."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from coinbt import __version__
from coinbt.api.analysis import Analysis
from coinbt.api.backtests import Backtests
from coinbt.api.catalog import Catalog
from coinbt.api.errors import error_response, handle_error, json_response
from coinbt.api.exports import Exports
from coinbt.api.guard import RequestGuard
from coinbt.api.openapi import openapi
from coinbt.api.rules import RulesApi
from coinbt.api.stream import MAX_STREAMS, EventStream
from coinbt.api.sweeps import Sweeps
from coinbt.api.vocabulary import status_module
from coinbt.errors import CoinbtError, UnauthorizedError
from coinbt.runtime import System

__all__ = ("PUBLIC_PATHS", "create_app")

DASHBOARD = Path(__file__).parent.parent / "dashboard"
PUBLIC_PATHS = ("/health",)
PUBLIC_PREFIXES = ("/static/",)  # the dashboard's code: it holds no data and asks for the token


class TokenCheck:
    """Every request but /health and the dashboard's static files needs ``Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            public = path in PUBLIC_PATHS or path == "/" or path.startswith(PUBLIC_PREFIXES)
            if not public:
                given = dict(scope["headers"]).get(b"authorization", b"")
                if not hmac.compare_digest(given, self.expected):
                    response = error_response(
                        UnauthorizedError(
                            "this server needs an API token: Authorization: Bearer <token>"
                            if not given
                            else "wrong API token"
                        )
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(
    system: System,
    *,
    token: str | None = None,
    allowed_hosts: Iterable[str] = (),
    max_streams: int = MAX_STREAMS,
) -> ASGIApp:
    """The ASGI app serving ``system``; with ``token``, requests need it (:class:`TokenCheck`).

    Every request passes the :class:`~coinbt.api.guard.RequestGuard` first: a ``Host`` among the
    loopback names and ``allowed_hosts``, no cross-origin write, the right body media type.
    """
    backtests = Backtests(system)
    stream = EventStream(system, max_streams=max_streams)
    sweeps = Sweeps(system)
    catalog = Catalog(system)
    rules = RulesApi()
    exports = Exports(system)
    analysis = Analysis(system)
    document = openapi(token_required=token is not None, max_bars=system.config.max_bars)

    async def health(request: Request) -> Response:
        executor_down = system.executor is not None and system.executor.unavailable is not None
        return json_response(
            {
                # degraded: serving, but no backtest can start (a lost Dask scheduler)
                "status": "degraded" if executor_down else "ok",
                "executor": "unavailable" if executor_down else "ok",
                "version": __version__,
                "last_position": await system.store.last_position(),
                "projected_position": system.projector.position,
                "workers": len(system.workers),
                "instance": system.task_manager.instance_id,
            }
        )

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(await _metrics(system), media_type="text/plain; version=0.0.4")

    async def openapi_json(request: Request) -> Response:
        return json_response(document)

    async def dashboard(request: Request) -> Response:
        return FileResponse(DASHBOARD / "index.html", media_type="text/html")

    routes: list[BaseRoute] = [
        Route("/", dashboard),
        Route("/backtests", backtests.submit, methods=["POST"]),
        Route("/backtests", backtests.list, methods=["GET"]),
        Route("/backtests/{task_id}", backtests.get, methods=["GET"]),
        Route("/backtests/{task_id}", backtests.cancel, methods=["DELETE"]),
        Route("/backtests/{task_id}/events", backtests.events, methods=["GET"]),
        Route("/backtests/{task_id}/positions", backtests.positions, methods=["GET"]),
        Route("/backtests/{task_id}/fills", exports.or_json("fills", backtests.fills)),
        Route("/backtests/{task_id}/equity", exports.or_json("equity", backtests.equity)),
        Route("/backtests/{task_id}/trades", exports.or_json("trades", analysis.trades)),
        Route("/backtests/{task_id}/prices", analysis.prices, methods=["GET"]),
        Route("/backtests/{task_id}/analysis", analysis.analysis, methods=["GET"]),
        Route("/backtests/{task_id}/report", exports.report, methods=["GET"]),
        Route("/backtests/{task_id}/artifacts", backtests.artifacts, methods=["GET"]),
        Route("/sweeps", sweeps.submit, methods=["POST"]),
        Route("/sweeps", sweeps.list, methods=["GET"]),
        Route("/sweeps/{task_id}", sweeps.get, methods=["GET"]),
        Route("/sweeps/{task_id}", sweeps.cancel, methods=["DELETE"]),
        Route("/sweeps/{task_id}/rows", sweeps.rows, methods=["GET"]),
        Route("/sweeps/{task_id}/table", sweeps.table, methods=["GET"]),
        Route("/events", stream.events, methods=["GET"]),
        Route("/strategies", catalog.strategies, methods=["GET"]),
        Route("/functions", rules.functions, methods=["GET"]),
        Route("/rules/validate", rules.validate, methods=["POST"]),
        Route("/datasets", catalog.datasets, methods=["GET"]),
        Route("/datasets", catalog.upload, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
    if (DASHBOARD / "static").is_dir():
        routes.append(Route("/static/status.js", status_module, methods=["GET"]))
        routes.append(Mount("/static", StaticFiles(directory=DASHBOARD / "static"), name="static"))
    app: ASGIApp = Starlette(
        routes=routes,
        # CoinbtError: answered by the ExceptionMiddleware (no traceback logged for a 4xx).
        # Exception: anything else is a bug: a generic 500, and Starlette re-raises it so that
        # uvicorn logs the traceback.
        exception_handlers={
            CoinbtError: handle_error,
            Exception: handle_error,
            404: _not_found,
            405: _not_allowed,
        },
    )
    if token is not None:
        app = TokenCheck(app, token)
    return RequestGuard(app, allowed_hosts)


async def _not_found(request: Request, exc: Exception) -> Response:
    body = {
        "error": {"code": "not_found", "message": f"no route {request.url.path}", "details": None}
    }
    return json_response(body, 404)


async def _not_allowed(request: Request, exc: Exception) -> Response:
    body = {
        "error": {
            "code": "method_not_allowed",
            "message": f"{request.method} is not allowed on {request.url.path}",
            "details": None,
        }
    }
    return json_response(body, 405, headers={"Allow": ", ".join(_allowed_methods(request))})


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route takes on this path (RFC 9110: a 405 carries ``Allow``)."""
    methods: set[str] = set()
    scope = {**request.scope, "root_path": ""}  # inside a Mount, the path from the top again
    for route in request.app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:  # a Mount (the static files) takes GET and HEAD
            methods |= getattr(route, "methods", None) or {"GET", "HEAD"}
    return sorted(methods)


def _storage_metrics(system: System) -> list[str]:
    uploader = system.uploader
    lines = [
        "# HELP coinbt_artifacts Artifacts by state: pending (upload retried), stored, failed.",
        "# TYPE coinbt_artifacts gauge",
        *(f'coinbt_artifacts{{state="{s}"}} {n}' for s, n in system.outbox.counts.items()),
        "# HELP coinbt_artifact_uploads_total Artifacts uploaded since start.",
        "# TYPE coinbt_artifact_uploads_total counter",
        f"coinbt_artifact_uploads_total {uploader.uploaded}",
        "# HELP coinbt_artifact_upload_failures_total Failed upload attempts since start.",
        "# TYPE coinbt_artifact_upload_failures_total counter",
        f"coinbt_artifact_upload_failures_total {uploader.failed_attempts}",
        "# HELP coinbt_artifact_upload_backoff_seconds The wait before the next retry (0: none).",
        "# TYPE coinbt_artifact_upload_backoff_seconds gauge",
        f"coinbt_artifact_upload_backoff_seconds {uploader.delay if uploader.backing_off else 0}",
    ]
    backups = system.backups
    if backups is not None:
        lines += [
            "# HELP coinbt_backups_total Periodic log backups taken since start.",
            "# TYPE coinbt_backups_total counter",
            f"coinbt_backups_total {backups.completed}",
            "# HELP coinbt_backup_failures_total Periodic log backups that failed since start.",
            "# TYPE coinbt_backup_failures_total counter",
            f"coinbt_backup_failures_total {backups.failures}",
            "# HELP coinbt_backup_last_position The log position of the last backup.",
            "# TYPE coinbt_backup_last_position gauge",
            f"coinbt_backup_last_position {backups.last.last_position if backups.last else 0}",
        ]
    return lines


def _executor_metrics(system: System) -> list[str]:
    executor: Any = system.executor
    if executor is None:
        return []
    lines = [
        "# HELP coinbt_executor_up Whether backtests can start (0: e.g. a lost Dask scheduler).",
        "# TYPE coinbt_executor_up gauge",
        f"coinbt_executor_up {0 if executor.unavailable is not None else 1}",
    ]
    if hasattr(executor, "reconnects"):
        lines += [
            "# HELP coinbt_executor_reconnects_total New scheduler connections after one was lost.",
            "# TYPE coinbt_executor_reconnects_total counter",
            f"coinbt_executor_reconnects_total {executor.reconnects}",
            "# HELP coinbt_executor_failed_connects_total Failed tries to reconnect the scheduler.",
            "# TYPE coinbt_executor_failed_connects_total counter",
            f"coinbt_executor_failed_connects_total {executor.failed_connects}",
        ]
    return lines


async def _metrics(system: System) -> str:
    counts = await system.read.counts()
    last = await system.store.last_position()
    lines: list[str] = [
        "# HELP coinbt_tasks Tasks by status (read model).",
        "# TYPE coinbt_tasks gauge",
        *(f'coinbt_tasks{{status="{status}"}} {n}' for status, n in counts.items()),
        "# HELP coinbt_queue_depth Tasks queued and not yet started.",
        "# TYPE coinbt_queue_depth gauge",
        f"coinbt_queue_depth {system.task_manager.queue_depth}",
        "# HELP coinbt_running Tasks running now.",
        "# TYPE coinbt_running gauge",
        f"coinbt_running {len(system.task_manager.running)}",
        "# HELP coinbt_workers Worker processes.",
        "# TYPE coinbt_workers gauge",
        f"coinbt_workers {len(system.workers)}",
        "# HELP coinbt_log_position The newest event's position.",
        "# TYPE coinbt_log_position gauge",
        f"coinbt_log_position {last}",
        "# HELP coinbt_projection_lag Events appended but not yet in the read models.",
        "# TYPE coinbt_projection_lag gauge",
        f"coinbt_projection_lag {max(0, last - system.projector.position)}",
        *_storage_metrics(system),
        *_executor_metrics(system),
    ]
    store: Any = system.store
    histogram = getattr(store, "commit_latency", None)
    if histogram is not None:
        lines += [
            "# HELP coinbt_append_latency_seconds Time to commit one group-commit transaction.",
            "# TYPE coinbt_append_latency_seconds histogram",
            *(
                f'coinbt_append_latency_seconds_bucket{{le="{le}"}} {n}'
                for le, n in histogram.cumulative()
            ),
            f"coinbt_append_latency_seconds_sum {histogram.sum:.6f}",
            f"coinbt_append_latency_seconds_count {histogram.count}",
        ]
        stats = store.stats
        lines += [
            "# HELP coinbt_appends_total Appends committed since start.",
            "# TYPE coinbt_appends_total counter",
            f"coinbt_appends_total {stats['appends']}",
            "# HELP coinbt_append_transactions_total Group-commit transactions since start.",
            "# TYPE coinbt_append_transactions_total counter",
            f"coinbt_append_transactions_total {stats['transactions']}",
        ]
    return "\n".join(lines) + "\n"
