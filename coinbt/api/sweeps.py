"""``/sweeps``: submit a sweep or walk-forward, list, status (with its summary), cancel, and the
result table (sorted pages, CSV and Parquet downloads). DESIGN section 11; docs/sweeps.md."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coinbt import defaults
from coinbt.api._params import int_param, read_body, status_param, task_id_param
from coinbt.api.backtests import decode_cursor, encode_cursor
from coinbt.api.errors import json_response
from coinbt.errors import ArtifactPendingError, InvalidRequestError, MissingExtraError
from coinbt.lifecycle import Status
from coinbt.projections.status import TaskView
from coinbt.runtime import System
from coinbt.sweeps import decode_sweep

__all__ = ("Sweeps",)

SWEEP_LIMIT = defaults.SWEEP_BODY_LIMIT
_SCAN_PAGE = 500


class Sweeps:
    """The handlers, bound to one running :class:`System`."""

    def __init__(self, system: System) -> None:
        self.system = system

    def _json(self, view: TaskView, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        out = self.system.task_json(view)
        out["kind"] = "walk_forward" if _walk_forward(view) else "grid"
        out["sweep"] = summary  # once completed (and its summary artifact stored)
        return out

    async def submit(self, request: Request) -> Response:
        body = (await read_body(request, SWEEP_LIMIT)).strip()
        if not body:
            raise InvalidRequestError("the body must be a JSON sweep spec", code="empty_body")
        try:
            spec = decode_sweep(body)
        except msgspec.DecodeError as e:
            raise InvalidRequestError(f"malformed JSON: {e}", code="malformed_json") from None
        view = await self.system.submit_sweep(spec)
        return json_response(self._json(view), 202)

    async def list(self, request: Request) -> Response:
        """Sweeps only, newest first: a scan of the task list (sweeps are tasks like any
        other; the status read model has no kind column)."""
        status = status_param(request)
        limit = int_param(request, "limit", 50, minimum=1, maximum=500)
        cursor = request.query_params.get("cursor")
        before = decode_cursor(cursor) if cursor else None
        found: list[TaskView] = []
        while len(found) <= limit:
            views = await self.system.read.tasks(status=status, limit=_SCAN_PAGE, before_seq=before)
            found.extend(v for v in views if v.spec.sweep is not None)
            if len(views) < _SCAN_PAGE:
                break
            before = views[-1].seq
        page = found[:limit]
        next_cursor = encode_cursor(page[-1].seq) if len(found) > limit else None
        return json_response({"sweeps": [self._json(v) for v in page], "next_cursor": next_cursor})

    async def get(self, request: Request) -> Response:
        view = await self.system.sweep(task_id_param(request))
        summary: dict[str, Any] | None = None
        pending = False
        if view.status is Status.COMPLETED:
            try:
                summary = await self.system.sweep_summary(view)
            except ArtifactPendingError:  # stored in a moment: the task reads fine meanwhile
                pending = True
        out = self._json(view, summary)
        if pending:
            out["sweep_pending"] = True
        return json_response(out)

    async def cancel(self, request: Request) -> Response:
        task_id = task_id_param(request)
        await self.system.sweep(task_id)
        reason = request.query_params.get("reason") or "cancelled by user"
        if len(reason) > 500:
            raise InvalidRequestError("at most 500 characters", field="reason")
        view = await self.system.cancel(task_id, reason=reason)
        return json_response(self._json(view))

    async def rows(self, request: Request) -> Response:
        """``?sort=NAME&order=desc|asc&limit=N&cursor=C``: a page of the whole table."""
        view = await self.system.sweep(task_id_param(request))
        if view.status is not Status.COMPLETED:
            raise InvalidRequestError(
                f"the sweep is {view.status}: its rows exist once it completed",
                code="not_completed",
                field="task_id",
            )
        table = await self.system.sweep_table(view)
        summary = await self.system.sweep_summary(view)
        assert table is not None
        assert summary is not None
        sort = request.query_params.get("sort") or None
        if sort is not None and sort not in table.columns:
            raise InvalidRequestError(
                f"unknown column {sort!r} (columns: {', '.join(table.columns)})", field="sort"
            )
        order = request.query_params.get("order") or ("desc" if summary["descending"] else "asc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError("must be asc or desc", field="order")
        limit = int_param(request, "limit", 50, minimum=1, maximum=1000)
        cursor = request.query_params.get("cursor")
        offset = _offset(cursor) if cursor else 0
        if sort is None and summary["kind"] == "grid":
            sort = summary["sort_by"]

        def page() -> list[dict[str, Any]]:
            indexes = table.order(sort, order == "desc")[offset : offset + limit]
            return table.rows(indexes)

        rows = await anyio.to_thread.run_sync(page)
        end = offset + len(rows)
        return json_response(
            {
                "task_id": view.task_id,
                "total": len(table),
                "columns": list(table.columns),
                "sort": sort,
                "order": order,
                "rows": rows,
                "next_cursor": f"o{end}" if end < len(table) else None,
            }
        )

    async def table(self, request: Request) -> Response:
        """The whole table: ``?format=csv`` (default) or ``parquet`` (needs pyarrow)."""
        view = await self.system.sweep(task_id_param(request))
        fmt = request.query_params.get("format") or "csv"
        if fmt not in ("csv", "parquet"):
            raise InvalidRequestError("must be csv or parquet", field="format")
        ref = view.artifacts.get("rows")
        if ref is None:
            raise InvalidRequestError(
                f"the sweep is {view.status}: its table exists once it completed",
                code="not_completed",
                field="task_id",
            )
        data = await self.system.artifact(ref)
        name = f"sweep-{view.task_id}"
        if fmt == "csv":
            return Response(
                data,
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtraError("Parquet export", "parquet", "pyarrow") from None
        parquet = await anyio.to_thread.run_sync(_to_parquet, data)
        return Response(
            parquet,
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'},
        )


def _walk_forward(view: TaskView) -> bool:
    return view.spec.sweep is not None and view.spec.sweep.walk_forward is not None


def _offset(cursor: str) -> int:
    if not (cursor.startswith("o") and cursor[1:].isascii() and cursor[1:].isdigit()):
        raise InvalidRequestError(
            "not a cursor this server issued (pass next_cursor as it is)", field="cursor"
        )
    if len(cursor) > 12:
        raise InvalidRequestError("not a cursor this server issued", field="cursor")
    return int(cursor[1:])


def _to_parquet(data: bytes) -> bytes:
    import io

    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = pa_csv.read_csv(io.BytesIO(data))
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()
