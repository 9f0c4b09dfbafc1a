"""``/backtests``: submit, list, status, cancel, and a task's events, positions, fills, equity and
artifacts."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from coinbt import defaults
from coinbt.api._downsample import downsample, drawdown
from coinbt.api._params import int_param, read_body, status_param, task_id_param
from coinbt.api.errors import json_response
from coinbt.errors import InvalidRequestError, PayloadTooLargeError, SpecError
from coinbt.results import Page
from coinbt.runtime import System
from coinbt.specs import decode_spec, decode_specs

__all__ = ("Backtests",)

SPEC_LIMIT = defaults.SPEC_BODY_LIMIT
BATCH_LIMIT = defaults.BATCH_BODY_LIMIT  # an array of up to MAX_BATCH specs


def encode_cursor(seq: int) -> str:
    return f"c{seq}"


_CURSOR = re.compile(r"c[0-9]{1,18}")  # fullmatch: ASCII digits, and within SQLite's int64


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise InvalidRequestError(
            "not a cursor this server issued (pass next_cursor as it is)", field="cursor"
        )
    return int(cursor[1:])


class Backtests:
    """The handlers, bound to one running :class:`System`."""

    def __init__(self, system: System) -> None:
        self.system = system

    async def submit(self, request: Request) -> Response:
        body = (await read_body(request, BATCH_LIMIT)).strip()
        if not body:
            raise InvalidRequestError("the body must be a JSON backtest spec", code="empty_body")
        if body.startswith(b"["):
            return await self._submit_batch(request, body)
        if len(body) > SPEC_LIMIT:
            raise PayloadTooLargeError(SPEC_LIMIT)
        try:
            spec = decode_spec(body)
        except msgspec.DecodeError as e:  # ValidationError is a SpecError by now
            raise InvalidRequestError(f"malformed JSON: {e}", code="malformed_json") from None
        key = request.headers.get("idempotency-key")
        view = await self.system.submit(spec, idempotency_key=key)
        return json_response(self.system.task_json(view), 202)

    async def _submit_batch(self, request: Request, body: bytes) -> Response:
        """A JSON array of specs: every one validated, then all queued in one append."""
        if request.headers.get("idempotency-key") is not None:
            raise SpecError("not supported for a batch of specs", field="Idempotency-Key")
        try:
            specs = decode_specs(body)
        except msgspec.DecodeError as e:
            raise InvalidRequestError(f"malformed JSON: {e}", code="malformed_json") from None
        views = await self.system.submit_batch(specs)
        return json_response({"tasks": [self.system.task_json(v) for v in views]}, 202)

    async def list(self, request: Request) -> Response:
        status = status_param(request)
        limit = int_param(request, "limit", 50, minimum=1, maximum=500)
        cursor = request.query_params.get("cursor")
        before = decode_cursor(cursor) if cursor else None
        views = await self.system.read.tasks(status=status, limit=limit + 1, before_seq=before)
        page = views[:limit]
        next_cursor = encode_cursor(page[-1].seq) if len(views) > limit else None
        return json_response(
            {"tasks": [self.system.task_json(v) for v in page], "next_cursor": next_cursor}
        )

    async def get(self, request: Request) -> Response:
        view = await self.system.task(task_id_param(request))
        return json_response(self.system.task_json(view))

    async def cancel(self, request: Request) -> Response:
        task_id = task_id_param(request)
        reason = request.query_params.get("reason") or "cancelled by user"
        if len(reason) > 500:
            raise InvalidRequestError("at most 500 characters", field="reason")
        view = await self.system.cancel(task_id, reason=reason)
        return json_response(self.system.task_json(view))

    async def events(self, request: Request) -> Response:
        task_id = task_id_param(request)
        after = int_param(request, "after", 0)
        limit = int_param(request, "limit", 100, minimum=1, maximum=1000)
        events = await self.system.task_events(task_id, after=after, limit=limit + 1)
        page = events[:limit]
        view = await self.system.task(task_id)
        newest = events[-1].version if events and len(events) <= limit else 0
        return json_response(
            {
                "events": [e.to_builtins() for e in page],
                "next_after": page[-1].position if len(events) > limit else None,
                "total": max(view.version, newest),
            }
        )

    async def positions(self, request: Request) -> Response:
        task_id = task_id_param(request)
        positions = await self.system.positions(task_id)
        return json_response(
            {"task_id": task_id, "positions": [p.to_builtins() for p in positions]}
        )

    async def fills(self, request: Request) -> Response:
        return await self._page(request, "fills", self.system.fills)

    async def _page(
        self, request: Request, name: str, read: Callable[..., Awaitable[Page]]
    ) -> Response:
        task_id = task_id_param(request)
        offset = int_param(request, "offset", 0)
        limit = int_param(request, "limit", 100, minimum=1, maximum=1000)
        page = await read(task_id, offset=offset, limit=limit)
        end = offset + len(page.rows)
        return json_response(
            {
                "task_id": task_id,
                "total": page.total,
                "offset": offset,
                name: page.rows,
                "next_offset": end if end < page.total else None,
            }
        )

    async def artifacts(self, request: Request) -> Response:
        task_id = task_id_param(request)
        rows = await self.system.artifact_states(task_id)
        return json_response({"task_id": task_id, "artifacts": [row.to_builtins() for row in rows]})

    async def equity(self, request: Request) -> Response:
        task_id = task_id_param(request)
        points = int_param(request, "points", 1000, minimum=0, maximum=100_000)
        ts, equity = await self.system.equity(task_id)

        def shape() -> dict[str, Any]:
            dd = drawdown(equity)
            keep = downsample(len(equity), points, equity, dd)
            return {
                "task_id": task_id,
                "total_points": len(equity),
                "ts": ts[keep].tolist(),
                "equity": np.asarray(equity)[keep].tolist(),
                "drawdown": dd[keep].tolist(),
            }

        return json_response(await anyio.to_thread.run_sync(shape))
