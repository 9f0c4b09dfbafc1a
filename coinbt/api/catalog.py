"""``/strategies`` and ``/datasets``: what can be submitted, with parameter schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from coinbt import defaults
from coinbt.api.errors import json_response
from coinbt.datasets import DatasetInfo, check_name, iso_ms
from coinbt.errors import InvalidRequestError, PayloadTooLargeError, TooManyUploadsError
from coinbt.runtime import System

__all__ = ("Catalog",)

UPLOAD_LIMIT = defaults.UPLOAD_BODY_LIMIT
MAX_UPLOADS = 2  # uploads parsed at once; more get 429 (each holds about one 1 MB chunk)
RULES_ENTRY: dict[str, Any] = {
    "name": "rules",
    "description": (
        'Your own conditions: give "rules": {"entry": ..., "exit": ...} (optionally '
        '"short_entry", "short_exit"), expressions over open, high, low, close, volume, your '
        '"params" (numbers) and the functions of GET /functions; for example "entry": '
        '"cross_above(sma(close, fast), sma(close, slow))". Check one with POST /rules/validate.'
    ),
    "params": {
        "type": "object",
        "title": "rules",
        "description": "any numeric parameters the rules name",
        "additionalProperties": {"type": "number"},
    },
    "source": "rules",
}


def dataset_json(info: DatasetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "symbol": info.symbol,
        "rows": info.rows,
        "start": iso_ms(info.start_ms),
        "end": iso_ms(info.end_ms),
        "interval_ms": info.interval_ms,
        "gaps": msgspec.to_builtins(info.gaps),
        "sha256": info.sha256,
        "source": info.source,
        "provenance": msgspec.to_builtins(info.provenance),
        "created_at": iso_ms(info.created_at // 1000),
    }


class Catalog:
    def __init__(self, system: System, max_uploads: int = MAX_UPLOADS) -> None:
        self.system = system
        self._uploads = anyio.Semaphore(max_uploads)
        self._max_uploads = max_uploads

    async def strategies(self, request: Request) -> Response:
        """Builtin, plugin and rules strategies, each with ``"source"`` (DESIGN.md section 10)."""
        from coinbt.engine import STRATEGIES
        from coinbt.engine.plugins import plugins

        listed: list[dict[str, Any]] = [
            {
                "name": s.name,
                "description": s.description,
                "params": s.schema(),
                "source": "builtin",
            }
            for s in STRATEGIES.values()
        ]
        for s in plugins().values():
            listed.append(
                {
                    "name": s.name,
                    "description": s.description,
                    "params": s.schema(),
                    "source": "plugin",
                    "provenance": dict(s.provenance),
                }
            )
        listed.append(RULES_ENTRY)
        return json_response({"strategies": listed})

    async def datasets(self, request: Request) -> Response:
        listing = await self.system.catalog.listing()
        return json_response(
            {
                "datasets": [dataset_json(i) for i in listing.datasets],
                # Stored records that cannot be shown: reported here and in the log, never a 500.
                "skipped": [{"name": s.name, "reason": s.reason} for s in listing.skipped],
                "synthetic": {
                    "description": "geometric Brownian motion: the same inputs give the same bars",
                    "max_bars": self.system.config.max_bars,
                    "fields": {
                        "bars": "number of bars (>= 2)",
                        "seed": "random seed (>= 0)",
                        "interval": "bar interval like 1m, 5m, 1h, 1d",
                        "start_price": "first price (> 0)",
                    },
                },
            }
        )

    async def upload(self, request: Request) -> Response:
        """``POST /datasets?name=BTCUSDT-1m[&symbol=BTCUSDT][&update=1][&strict=1]`` with the
        CSV as the body, parsed as it arrives: the first bad row answers 422 at once, memory stays
        at about one chunk, and at most ``MAX_UPLOADS`` run at once (429 beyond)."""
        name = request.query_params.get("name")
        if not name:
            raise InvalidRequestError("give the dataset's name: ?name=...", field="name")
        check_name(name)
        flags = {key: _flag(request, key) for key in ("update", "strict")}
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > UPLOAD_LIMIT:
            raise PayloadTooLargeError(UPLOAD_LIMIT)
        try:
            self._uploads.acquire_nowait()
        except anyio.WouldBlock:
            raise TooManyUploadsError(self._max_uploads) from None
        try:
            info = await self.system.catalog.import_stream(
                name,
                _limited(request),
                symbol=request.query_params.get("symbol") or None,
                source="upload",
                **flags,
            )
        finally:
            self._uploads.release()
        return json_response(dataset_json(info), 201)


def _flag(request: Request, key: str) -> bool:
    raw = request.query_params.get(key, "")
    if raw not in ("", "0", "1", "true", "false"):
        raise InvalidRequestError(f"must be 1 or 0, got {raw!r}", field=key)
    return raw in ("1", "true")


async def _limited(request: Request) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > UPLOAD_LIMIT:
            raise PayloadTooLargeError(UPLOAD_LIMIT)
        if chunk:
            yield chunk
    if size == 0:
        raise InvalidRequestError("the body must be the CSV file", code="empty_body")
