"""``/strategies`` and ``/datasets``: what can be submitted, with parameter schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from coinbt.api._params import read_body
from coinbt.api.errors import json_response
from coinbt.datasets import DatasetInfo, check_name
from coinbt.errors import InvalidRequestError
from coinbt.runtime import System

__all__ = ("Catalog",)

UPLOAD_LIMIT = 512 * 1024 * 1024
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


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def dataset_json(info: DatasetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "symbol": info.symbol,
        "rows": info.rows,
        "start": _iso_ms(info.start_ms),
        "end": _iso_ms(info.end_ms),
        "interval_ms": info.interval_ms,
        "sha256": info.sha256,
        "source": info.source,
        "created_at": _iso_ms(info.created_at // 1000),
    }


class Catalog:
    def __init__(self, system: System) -> None:
        self.system = system

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
        """``POST /datasets?name=BTCUSDT-1m[&symbol=BTCUSDT]`` with the CSV as the body."""
        name = request.query_params.get("name")
        if not name:
            raise InvalidRequestError("give the dataset's name: ?name=...", field="name")
        check_name(name)
        body = await read_body(request, UPLOAD_LIMIT)
        if not body.strip():
            raise InvalidRequestError("the body must be the CSV file", code="empty_body")
        info = await self.system.catalog.import_bytes(
            name, body, symbol=request.query_params.get("symbol") or None, source="upload"
        )
        return json_response(dataset_json(info), 201)
