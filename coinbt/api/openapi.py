"""The OpenAPI document, from the msgspec types that decode requests and shape responses."""

from __future__ import annotations

from typing import Any

import msgspec

from coinbt import __version__
from coinbt.api import models
from coinbt.api.rules import RulesCheckIn
from coinbt.events import TaskSpec
from coinbt.lifecycle import Status
from coinbt.specs import DEFAULT_MAX_BARS

__all__ = ("openapi",)

_REF = "#/components/schemas/{name}"


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=schema)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ErrorOut")}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _list_parameters(noun: str) -> list[dict[str, Any]]:
    """status, limit and cursor: the query of every task list (backtests and sweeps)."""
    return [
        _query(
            "status",
            {"type": "string", "enum": [str(status) for status in Status]},
            f"only {noun} with this status",
        ),
        _query(
            "limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 50)"
        ),
        _query(
            "cursor",
            {"type": "string", "pattern": "^(c[0-9]{1,18})?$"},
            "next_cursor of the previous page (empty: the first page)",
        ),
    ]


_CANCEL_REASON = _query(
    "reason", {"type": "string", "maxLength": 500}, "why (recorded in the Cancelled event)"
)

_TASK_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
}
_INT = {"type": "integer", "minimum": 0, "maximum": 2**62}  # as _params.int_param
_DATASET_NAME = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A bar interval (a positive length of at most 366 days is checked by the server: 422).
_INTERVAL = r"^\s*[0-9]{1,15}\s*(ms|s|m|h|d|w)\s*$"
_DATE_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}


def _exact_spec(components: dict[str, Any], max_bars: int) -> None:
    """Make ``TaskSpec`` say what the server takes: one branch per strategy (its own parameter
    schema, as GET /strategies serves it), ``data`` as exactly one of a dataset and a synthetic
    series, and the bounds the server checks. Rules JSON Schema cannot state are in the
    descriptions and answered 422: ``fast < slow`` (and the like), windows beyond the data, an
    unknown dataset, an empty time range, an interval of zero or over 366 days."""
    from coinbt.engine import STRATEGIES
    from coinbt.engine.plugins import plugins
    from coinbt.specs import MAX_TIMEOUT_S

    spec = components.pop("TaskSpec")
    properties = dict(spec["properties"])
    properties["timeout_s"] = {**properties["timeout_s"], "maximum": MAX_TIMEOUT_S}
    branches = []

    def branch(name: str, changes: dict[str, Any], required: tuple[str, ...] = ()) -> None:
        key = f"TaskSpec_{name}"
        components[key] = {
            "title": f"TaskSpec ({name})",
            "type": "object",
            "properties": {**properties, "strategy": {"const": name}, **changes},
            "required": ["strategy", "data", *required],
            "additionalProperties": False,
        }
        branches.append({"$ref": _REF.format(name=key)})

    strategies = {**STRATEGIES, **plugins()}
    for name in sorted(strategies):
        params = dict(strategies[name].schema())
        params.pop("title", None)
        branch(name, {"params": {**params, "default": {}}, "rules": {"type": "null"}})
    if "rules" in properties:  # conditions over the bars, checked by the server (422)
        branch("rules", {"rules": properties["rules"]["anyOf"][0]}, required=("rules",))
    components["TaskSpec"] = {
        "title": "TaskSpec",
        "description": spec.get("description", "") + " One branch per strategy.",
        "oneOf": branches,
    }
    data = components["DataSpec"]
    of_dataset = {  # everything but the synthetic series (start, end, version, ...)
        **{k: v for k, v in data["properties"].items() if k != "synthetic"},
        "dataset": {"type": "string", "pattern": _DATASET_NAME},
        "synthetic": {"type": "null"},
        "datasets": {"type": "null"},
        "versions": {"type": "null"},
    }
    of_datasets = {  # a portfolio: several datasets, each at its version (default: latest)
        **of_dataset,
        "dataset": {"type": "null"},
        "version": {"type": "null"},
        "datasets": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": _DATASET_NAME},
        },
        "versions": {
            **data["properties"]["versions"]["anyOf"][0],
            "description": "one version per dataset, in order (default: each one's latest; "
            "Queued records them)",
        },
    }
    components["DataSpec"] = {
        "title": "DataSpec",
        "description": data.get("description", ""),
        "oneOf": [
            {
                "type": "object",
                "properties": of_dataset,
                "required": ["dataset"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {
                    **{k: {"type": "null"} for k in of_dataset},
                    "synthetic": {"$ref": _REF.format(name="SyntheticSpec")},
                },
                "required": ["synthetic"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": of_datasets,
                "required": ["datasets"],
                "additionalProperties": False,
            },
        ],
    }
    synthetic = components["SyntheticSpec"]["properties"]
    synthetic["bars"] = {**synthetic["bars"], "maximum": max_bars}
    synthetic["interval"] = {**synthetic["interval"], "pattern": _INTERVAL}


def _sweep_spec(components: dict[str, Any]) -> None:
    """``SweepSpec``: the body of POST /sweeps, as :func:`coinbt.sweeps.decode_sweep` reads it --
    a ``TaskSpec`` branch without ``sweep`` (refused: 422), with ``grid`` (required), ``sort_by``,
    ``descending`` and ``walk_forward`` beside ``strategy`` and ``data``. Rules JSON Schema cannot
    state are answered 422: a grid naming an unknown parameter or a value out of its range, a
    step of 0 or of the wrong sign, too many combinations, an unknown ``sort_by``, a walk-forward
    window not like ``180d``, with no whole fold, or with shorts, stops or sizing."""
    from coinbt.engine.sweep import TRADING_GRID

    axis = {
        "anyOf": [
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": ["boolean", "integer", "number", "string"]},
            },
            {"$ref": _REF.format(name="GridRange")},
        ]
    }
    options = {
        "grid": {"type": "object", "minProperties": 1, "additionalProperties": axis},
        "sort_by": {"type": "string", "default": "sharpe"},
        "descending": {"type": "boolean", "default": True},
        "walk_forward": {
            "anyOf": [{"$ref": _REF.format(name="WalkForwardSpec")}, {"type": "null"}],
            "default": None,
        },
    }
    branches = []
    for ref in components["TaskSpec"]["oneOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        task = components[name]
        key = "SweepSpec" + name.removeprefix("TaskSpec")
        properties = {k: v for k, v in task["properties"].items() if k != "sweep"}
        grid = options["grid"]
        params = properties["params"].get("properties")
        if params is not None:  # a builtin strategy: its parameters and the trading options
            values = {
                **{p: {k: v for k, v in s.items() if k != "default"} for p, s in params.items()},
                **{t: {"type": "number", "exclusiveMinimum": 0} for t in TRADING_GRID},
            }
            grid = {
                "type": "object",
                "minProperties": 1,
                "properties": {
                    p: {
                        "anyOf": [
                            {"type": "array", "minItems": 1, "items": v},
                            {"$ref": _REF.format(name="GridRange")},
                        ]
                    }
                    for p, v in values.items()
                },
                "additionalProperties": False,
            }
        components[key] = {
            **task,
            "title": task["title"].replace("TaskSpec", "SweepSpec"),
            "properties": {**properties, **options, "grid": grid},
            "required": [*task["required"], "grid"],
        }
        branches.append({"$ref": _REF.format(name=key)})
    components["SweepSpec"] = {
        "title": "SweepSpec",
        "description": "A sweep: a backtest spec with grid, sort_by, descending and walk_forward"
        " at the top level (docs/sweeps.md). One branch per strategy.",
        "oneOf": branches,
    }
    components["SweepOut"] = {
        "title": "SweepOut",
        "description": "The task, its kind, and its summary once completed (sweep_pending while"
        " the summary's upload is pending).",
        "allOf": [
            {"$ref": _REF.format(name="TaskOut")},
            {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["grid", "walk_forward"]},
                    "sweep": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                    "sweep_pending": {"const": True},
                },
                "required": ["kind", "sweep"],
            },
        ],
    }
    components["SweepPage"] = {
        "title": "SweepPage",
        "type": "object",
        "properties": {
            "sweeps": {"type": "array", "items": {"$ref": _REF.format(name="SweepOut")}},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["sweeps", "next_cursor"],
    }
    components["SweepRowsOut"] = {
        "title": "SweepRowsOut",
        "type": "object",
        "properties": {
            "task_id": {"type": "string"},
            "total": {"type": "integer", "minimum": 0},
            "columns": {"type": "array", "items": {"type": "string"}},
            "sort": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "order": {"enum": ["asc", "desc"]},
            "rows": {"type": "array", "items": {"type": "object"}},
            "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["task_id", "total", "columns", "sort", "order", "rows", "next_cursor"],
    }


_FORMAT = _query(
    "format",
    {"type": "string", "enum": ["csv", "parquet"]},
    "download every row as CSV or Parquet (Parquet needs the server's coinbt[parquet] extra)",
)
_POINTS = _query(
    "points", {"type": "integer", "minimum": 0, "maximum": 100000}, "at most this many points"
)
_FILE = {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def openapi(*, token_required: bool, max_bars: int = DEFAULT_MAX_BARS) -> dict[str, Any]:
    types = [
        TaskSpec,
        models.TaskOut,
        models.TaskPage,
        models.EventPage,
        models.PositionsOut,
        models.FillsOut,
        models.TradesOut,
        models.EquityOut,
        models.ArtifactsOut,
        models.StrategiesOut,
        models.FunctionsOut,
        models.RulesCheckOut,
        RulesCheckIn,
        models.DatasetsOut,
        models.DatasetOut,
        models.HealthOut,
        models.ErrorOut,
    ]
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    _exact_spec(components, max_bars)
    _sweep_spec(components)
    check = components.get("RulesCheckIn", {}).get("properties", {})
    if "bars" in check:  # a positive number of bars, or none (the server answers 400)
        check["bars"] = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}
    ok_task = {"description": "the task", "content": _json("TaskOut")}
    not_found = _error("no task with this id")
    bad = _error("a malformed request (the error names the parameter)")
    task_paths: dict[str, Any] = {
        "/backtests": {
            "post": _op(
                "Submit a backtest, or a JSON array of up to 1,000 (queued in one append)",
                {
                    "202": {
                        "description": 'queued: the task, or {"tasks": [...]} for an array',
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": _REF.format(name="TaskOut")},
                                        {
                                            "type": "object",
                                            "properties": {
                                                "tasks": {
                                                    "type": "array",
                                                    "items": {"$ref": _REF.format(name="TaskOut")},
                                                }
                                            },
                                            "additionalProperties": False,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "400": _error("malformed JSON or an empty body"),
                    "413": _error("the body is too large"),
                    "422": _error("the spec breaks a rule; details name each field"),
                    "429": _error("the queue is full; retry after Retry-After seconds"),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": _REF.format(name="TaskSpec")},
                                    {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": 1000,
                                        "items": {"$ref": _REF.format(name="TaskSpec")},
                                    },
                                ]
                            }
                        }
                    },
                },
                parameters=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                    }
                ],
            ),
            "get": _op(
                "List backtests, newest first",
                {"200": {"description": "a page", "content": _json("TaskPage")}, "400": bad},
                parameters=_list_parameters("tasks"),
            ),
        },
        "/backtests/{task_id}": {
            "get": _op(
                "A backtest's status, progress and result",
                {"200": ok_task, "400": bad, "404": not_found},
                parameters=[_TASK_ID],
            ),
            "delete": _op(
                "Cancel a queued or running backtest",
                {
                    "200": ok_task,
                    "400": _error("completed or failed: cannot be cancelled"),
                    "404": not_found,
                    "409": _error("another process kept changing the task: retry"),
                },
                parameters=[_TASK_ID, _CANCEL_REASON],
            ),
        },
        "/backtests/{task_id}/events": {
            "get": _op(
                "The task's event history (audit trail)",
                {
                    "200": {"description": "a page", "content": _json("EventPage")},
                    "400": bad,
                    "404": not_found,
                },
                parameters=[
                    _TASK_ID,
                    _query("after", _INT, "a global position"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
            ),
        },
        "/backtests/{task_id}/positions": {
            "get": _op(
                "Positions read model",
                {
                    "200": {"description": "positions", "content": _json("PositionsOut")},
                    "400": bad,
                    "404": not_found,
                },
                parameters=[_TASK_ID],
            ),
        },
        "/backtests/{task_id}/fills": {
            "get": _op(
                "Fills, paged",
                {
                    "200": {
                        "description": "fills (with format: every fill as a file)",
                        "content": {**_json("FillsOut"), **_FILE},
                    },
                    "400": bad,
                    "404": _error("no such task, or its artifact is lost"),
                    "501": _error("Parquet asked for and pyarrow is not installed"),
                    "503": _error("the fills' upload to the artifact store is still pending"),
                },
                parameters=[
                    _TASK_ID,
                    _FORMAT,
                    _query("offset", _INT, "first fill"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
            ),
        },
        "/backtests/{task_id}/equity": {
            "get": _op(
                "Equity curve and drawdown, downsampled to at most `points`",
                {
                    "200": {
                        "description": "the curve (with format: every bar as a file)",
                        "content": {**_json("EquityOut"), **_FILE},
                    },
                    "400": bad,
                    "404": _error("no such task, or it has no curve yet"),
                    "501": _error("Parquet asked for and pyarrow is not installed"),
                    "503": _error("the curve's upload to the artifact store is still pending"),
                },
                parameters=[
                    _TASK_ID,
                    _FORMAT,
                    _query(
                        "points",
                        {"type": "integer", "minimum": 0, "maximum": 100000},
                        "at most this many points; 0 for all",
                    ),
                ],
            ),
        },
        "/backtests/{task_id}/trades": {
            "get": _op(
                "Round-trip trades of a completed task, flat to flat, the open one marked at the "
                "last close (JSON, every trade or a page; or a CSV or Parquet file)",
                {
                    "200": {
                        "description": "the trades",
                        "content": {**_json("TradesOut"), **_FILE},
                    },
                    "400": _error("bad format, or the task is not completed"),
                    "404": _error("no such task, or its artifact is lost"),
                    "501": _error("Parquet asked for and pyarrow is not installed"),
                    "503": _error("the trades' upload to the artifact store is still pending"),
                },
                parameters=[
                    _TASK_ID,
                    _FORMAT,
                    _query("offset", _INT, "first trade"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "page size (without it: every trade)",
                    ),
                ],
            ),
        },
        "/backtests/{task_id}/prices": {
            "get": _op(
                "Each asset's closes (downsampled) with its buy-and-hold equity at the same bars, "
                "and the benchmark: buy and hold of every asset, an equal share of the cash each",
                {
                    "200": {
                        "description": "prices",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": _error("the task is not completed, or a bad parameter"),
                    "404": not_found,
                    "503": _error("an artifact's upload is still pending"),
                },
                parameters=[_TASK_ID, _POINTS],
            ),
        },
        "/backtests/{task_id}/analysis": {
            "get": _op(
                "Buy-and-hold metrics, monthly returns, rolling Sharpe and trade statistics",
                {
                    "200": {
                        "description": "analysis",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": _error("the task is not completed, or a bad parameter"),
                    "404": not_found,
                    "503": _error("an artifact's upload is still pending"),
                },
                parameters=[_TASK_ID, _POINTS],
            ),
        },
        "/backtests/{task_id}/report": {
            "get": _op(
                "Tear sheet of a completed task: one self-contained HTML file",
                {
                    "200": {
                        "description": "the report",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "400": _error("the task is not completed"),
                    "404": not_found,
                    "503": _error("an artifact's upload is still pending"),
                },
                parameters=[_TASK_ID],
            ),
        },
        "/backtests/{task_id}/artifacts": {
            "get": _op(
                "The task's artifacts: where each is stored, or how its upload is going",
                {
                    "200": {"description": "artifacts", "content": _json("ArtifactsOut")},
                    "400": bad,
                    "404": not_found,
                },
                parameters=[_TASK_ID],
            ),
        },
        "/sweeps": {
            "post": _op(
                "Submit a parameter sweep or a walk-forward (docs/sweeps.md)",
                {
                    "202": {"description": "queued: the sweep", "content": _json("SweepOut")},
                    "400": _error("malformed JSON or an empty body"),
                    "413": _error("the body is too large"),
                    "415": _error("the body is not application/json"),
                    "422": _error("the sweep spec breaks a rule; details name each field"),
                    "429": _error("the queue is full; retry after Retry-After seconds"),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(name="SweepSpec")},
                            "example": {
                                "strategy": "sma_cross",
                                "data": {"synthetic": {"bars": 500, "seed": 7}},
                                "grid": {
                                    "fast": [5, 10],
                                    "slow": {"start": 20, "stop": 40, "step": 20},
                                },
                                "sort_by": "sharpe",
                            },
                        }
                    },
                },
            ),
            "get": _op(
                "List sweeps, newest first",
                {"200": {"description": "a page", "content": _json("SweepPage")}, "400": bad},
                parameters=_list_parameters("sweeps"),
            ),
        },
        "/sweeps/{task_id}": {
            "get": _op(
                "A sweep's status and progress, and its summary once completed",
                {
                    "200": {"description": "the sweep", "content": _json("SweepOut")},
                    "400": bad,
                    "404": _error("no sweep with this id (a backtest's id is not a sweep)"),
                },
                parameters=[_TASK_ID],
            ),
            "delete": _op(
                "Cancel a queued or running sweep",
                {
                    "200": {"description": "the sweep", "content": _json("SweepOut")},
                    "400": _error("completed or failed: cannot be cancelled"),
                    "404": _error("no sweep with this id"),
                    "409": _error("another process kept changing the task: retry"),
                },
                parameters=[_TASK_ID, _CANCEL_REASON],
            ),
        },
        "/sweeps/{task_id}/rows": {
            "get": _op(
                "A page of a completed sweep's table, sorted by any column",
                {
                    "200": {"description": "a page of rows", "content": _json("SweepRowsOut")},
                    "400": _error("the sweep is not completed, or a bad parameter"),
                    "404": _error("no sweep with this id, or its table is lost"),
                    "503": _error("the table's upload to the artifact store is still pending"),
                },
                parameters=[
                    _TASK_ID,
                    _query("sort", {"type": "string"}, "a column (default: the sweep's sort_by)"),
                    _query(
                        "order",
                        {"type": "string", "enum": ["asc", "desc"]},
                        "default: the sweep's own order",
                    ),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                    _query(
                        "cursor",
                        {"type": "string", "pattern": "^(o[0-9]{1,11})?$"},
                        "next_cursor of the previous page (empty: the first page)",
                    ),
                ],
            ),
        },
        "/sweeps/{task_id}/table": {
            "get": _op(
                "A completed sweep's whole table as a file",
                {
                    "200": {"description": "every row", "content": _FILE},
                    "400": _error("the sweep is not completed, or a bad format"),
                    "404": _error("no sweep with this id, or its table is lost"),
                    "501": _error("Parquet asked for and pyarrow is not installed"),
                    "503": _error("the table's upload to the artifact store is still pending"),
                },
                parameters=[
                    _TASK_ID,
                    _query(
                        "format",
                        {"type": "string", "enum": ["csv", "parquet"]},
                        "csv (default) or parquet (needs the server's coinbt[parquet] extra)",
                    ),
                ],
            ),
        },
        "/events": {
            "get": _op(
                "The global log after a position; text/event-stream for live updates",
                {
                    "200": {
                        "description": "a page (or an event stream)",
                        "content": {**_json("EventPage"), "text/event-stream": {}},
                    },
                    "400": bad,
                },
                parameters=[
                    _query("after", _INT, "a global position"),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"
                    ),
                ],
            ),
        },
        "/strategies": {
            "get": _op(
                "Strategies and their parameter schemas",
                {"200": {"description": "strategies", "content": _json("StrategiesOut")}},
            )
        },
        "/functions": {
            "get": _op(
                "The functions rules may call, with their arguments and outputs",
                {"200": {"description": "the catalogue", "content": _json("FunctionsOut")}},
            )
        },
        "/rules/validate": {
            "post": _op(
                "Check a rule set without submitting it (problems are a 200 with errors)",
                {
                    "200": {"description": "the verdict", "content": _json("RulesCheckOut")},
                    "400": _error("malformed JSON"),
                    "413": _error("the body is too large"),
                    "422": _error("the body is not a rules check; details name the field"),
                },
                requestBody={"required": True, "content": _json("RulesCheckIn")},
            )
        },
        "/datasets": {
            "get": _op(
                "Imported datasets and the synthetic data option",
                {"200": {"description": "datasets", "content": _json("DatasetsOut")}},
            ),
            "post": _op(
                "Import a CSV dataset (the body is the file)",
                {
                    "201": {"description": "registered", "content": _json("DatasetOut")},
                    "400": bad,
                    "409": _error("the name is taken"),
                    "413": _error("too large"),
                    "422": _error("the CSV is invalid; details name the row"),
                },
                parameters=[
                    {
                        "name": "name",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": _DATASET_NAME,
                        },
                    },
                    _query("symbol", {"type": "string"}, "default: the name's first part"),
                ],
                requestBody={
                    "required": True,
                    "content": {"text/csv": {"schema": {"type": "string", "minLength": 1}}},
                },
            ),
        },
        "/health": {
            "get": _op(
                "Liveness (no token needed)",
                {"200": {"description": "alive", "content": _json("HealthOut")}},
                security=[],
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "text/plain exposition format",
                        "content": {"text/plain": {}},
                    }
                },
            )
        },
    }
    _link_tasks(task_paths)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "coinbt",
            "version": __version__,
            "description": "Crypto backtests as durable, auditable tasks.",
        },
        "paths": task_paths,
        "components": {"schemas": components},
    }
    if token_required:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
        for path in task_paths.values():
            for operation in path.values():
                if operation.get("security") != []:
                    operation["responses"]["401"] = _error("missing or wrong token")
    return document


_OPERATION_IDS = {
    ("/backtests", "post"): "submitBacktest",
    ("/backtests", "get"): "listBacktests",
    ("/backtests/{task_id}", "get"): "getBacktest",
    ("/backtests/{task_id}", "delete"): "cancelBacktest",
    ("/backtests/{task_id}/events", "get"): "getBacktestEvents",
    ("/backtests/{task_id}/positions", "get"): "getBacktestPositions",
    ("/backtests/{task_id}/fills", "get"): "getBacktestFills",
    ("/backtests/{task_id}/equity", "get"): "getBacktestEquity",
    ("/backtests/{task_id}/artifacts", "get"): "getBacktestArtifacts",
    ("/backtests/{task_id}/prices", "get"): "getBacktestPrices",
    ("/backtests/{task_id}/analysis", "get"): "getBacktestAnalysis",
    ("/sweeps", "post"): "submitSweep",
    ("/sweeps", "get"): "listSweeps",
    ("/sweeps/{task_id}", "get"): "getSweep",
    ("/sweeps/{task_id}", "delete"): "cancelSweep",
    ("/sweeps/{task_id}/rows", "get"): "getSweepRows",
}  # not /trades, /report and /sweeps/{task_id}/table: they answer files (Parquet is binary),
# which a link follower (schemathesis's stateful phase) would decode as text


def _link_tasks(paths: dict[str, Any]) -> None:
    """operationIds, and OpenAPI links from a submitted task (202) to every operation on it, so
    a client (or schemathesis's stateful phase) can follow ``task_id`` from the answer."""
    for (path, method), operation_id in _OPERATION_IDS.items():
        paths[path][method]["operationId"] = operation_id
    for kind in ("backtests", "sweeps"):
        links = {
            operation_id[len("get") :] if operation_id.startswith("get") else "Cancel": {
                "operationId": operation_id,
                "parameters": {"task_id": "$response.body#/task_id"},
            }
            for (path, _), operation_id in _OPERATION_IDS.items()
            if path.startswith(f"/{kind}/{{task_id}}")
        }
        paths[f"/{kind}"]["post"]["responses"]["202"]["links"] = links
