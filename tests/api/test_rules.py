"""Rules over HTTP: a bad rule is a 422 naming the field and the column with nothing appended; a
good one runs in the service's worker processes and matches its builtin twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, tiny, wait_status

SMA = {
    "entry": "cross_above(sma(close, fast), sma(close, slow))",
    "exit": "cross_below(sma(close, fast), sma(close, slow))",
}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def spec(entry: str, exit: str = "close < 0", **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(tiny(bars=500))
    body["strategy"] = "rules"
    body["rules"] = {"entry": entry, "exit": exit}
    body["params"] = params
    return body


NESTED = "(" * 1000 + "close > 1" + ")" * 1000
DEEP_UNDER_LIMIT = "(" * 600 + "close > 1" + ")" * 600
UNARY = "-" * 1500 + "close > 1"

BAD = [
    # (entry, column or None, a word the message has)
    pytest.param("__import__('os')", 1, "function", id="import"),
    pytest.param("close.__class__ > 1", 1, "attribute", id="attribute"),
    pytest.param("().__class__.__bases__", 1, "attribute", id="bases"),
    pytest.param("(lambda: 1)() > 0", 2, "call", id="lambda-call"),
    pytest.param("(lambda: close) > 1", 2, "lambda", id="lambda"),
    pytest.param("max([c for c in close], 1) > 1", 5, "comprehension", id="comprehension"),
    pytest.param("sum(x for x in close) > 1", 4, "comprehension", id="generator"),
    pytest.param("'abc' > 1", 1, "string", id="string"),
    pytest.param("f'{close}' > 1", 1, "f-string", id="f-string"),
    pytest.param("close[-1] > 1", 1, "subscript", id="subscript"),
    pytest.param("close.mean() > 1", 1, "attribute", id="attribute-call"),
    pytest.param("sma(close, **{'window': 3}) > 1", 12, "**", id="keyword-splat"),
    pytest.param("sma(*[close, 3]) > 1", 5, "starred", id="star-args"),
    pytest.param("sma(close, window=3, window=4) > 1", 22, "twice", id="repeated-keyword"),
    pytest.param("sma(close, windo=3) > 1", 12, "did you mean 'window'", id="unknown-keyword"),
    pytest.param("close > 1 " + "and close > 1 " * 800, 2001, "2,000", id="10000-chars"),
    pytest.param(NESTED, 2001, "2,000", id="1000-deep-nesting"),
    pytest.param(DEEP_UNDER_LIMIT, 41, "nested", id="600-deep-brackets"),
    pytest.param(UNARY, None, "terms", id="1500-unary-minus"),
    pytest.param("sma(close, 1000000000) > 1", 12, "at most", id="window-1e9"),
    pytest.param("sma(close, 501) > 1", 12, "the data has only 500", id="window-over-bars"),
    pytest.param("sma(close, 0) > 1", 12, "at least 1", id="window-zero"),
    pytest.param("sma(close, 2.5) > 1", 12, "window", id="window-float"),
    pytest.param("smaa(close, 3) > 1", 1, "did you mean 'sma'", id="unknown-function"),
    pytest.param("clsoe > 1", 1, "did you mean 'close'", id="unknown-name"),
    pytest.param("sma(close) > 1", 1, "missing", id="too-few-args"),
    pytest.param("sma(close, 3, 4) > 1", 15, "at most 2", id="too-many-args"),
    pytest.param("sma(close > 1, 3) > 1", 5, "boolean", id="bool-where-series"),
    pytest.param("close + 1", 1, "condition", id="series-where-bool"),
    pytest.param("close > 1 and sma(close, 5)", 15, "condition", id="series-in-and"),
    pytest.param("(close > 1) + 2 > 0", 2, "boolean", id="bool-arithmetic"),
    pytest.param("close ** 2 > 1", 1, "+ - * /", id="power"),
    pytest.param("close if close > 1 else low", 1, "conditional", id="ifexp"),
    pytest.param("(x := close) > 1", 2, ":=", id="walrus"),
    pytest.param("close in close", 10, "compare", id="in"),
    pytest.param("close > ", None, "syntax", id="syntax"),
    pytest.param("", 1, "empty", id="empty"),
    pytest.param("import os", 1, "syntax", id="statement"),
    pytest.param("close > 1\x00", 10, "NUL", id="nul"),
    pytest.param("sma", 1, "function", id="bare-function"),
]


@pytest.mark.parametrize(("entry", "column", "word"), BAD)
async def test_a_bad_rule_is_a_422_naming_field_and_column(
    open_system: OpenSystem, entry: str, column: int | None, word: str
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.post("/backtests", json=spec(entry))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "Traceback" not in response.text
        details = [d for d in error["details"] if d["field"] == "rules.entry"]
        assert details, error
        assert word in details[0]["message"], details
        if column is not None:
            assert details[0]["column"] == column, details
            assert f"rules.entry, column {column}: " in error["message"]
        assert await system.store.last_position() == 0
        check = await http.post(
            "/rules/validate", json={"rules": spec(entry)["rules"], "bars": 500}
        )
        assert check.status_code == 200
        assert check.json()["valid"] is False
        assert check.json()["errors"][0]["field"] == "rules.entry"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"rules": None}, "rules", id="rules-missing"),
        pytest.param({"rules": {"entry": "close > 1"}}, "rules.exit", id="exit-missing"),
        pytest.param({"rules": {"entry": 3, "exit": "close < 1"}}, "rules.entry", id="not-text"),
        pytest.param(
            {"rules": {"entry": "close > 1", "exit": "close < 1", "sell": "x"}},
            "rules.sell",
            id="unknown-rule",
        ),
        pytest.param(
            {"rules": {"entry": "close > 1", "exit": "close < 1", "short_entry": "close > 2"}},
            "rules.short_exit",
            id="half-a-short-pair",
        ),
        pytest.param({"params": {"fast": "ten"}}, "params.fast", id="param-text"),
        pytest.param({"params": {"fast": True}}, "params.fast", id="param-bool"),
        pytest.param({"params": {"close": 3}}, "params.close", id="param-named-like-a-column"),
        pytest.param({"params": {"__class__": 3}}, "params.__class__", id="param-dunder"),
        pytest.param({"strategy": "sma_cross"}, "rules", id="rules-on-a-builtin"),
    ],
)
async def test_bad_rule_sets(open_system: OpenSystem, change: dict[str, Any], field: str) -> None:
    body = {**spec("close > 1"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.post("/backtests", json=body)
        assert response.status_code == 422, response.text
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert field in fields
        assert await system.store.last_position() == 0


async def test_a_param_window_names_the_param_and_the_column(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.post("/backtests", json=spec("sma(close, n) > close", n=900))
        assert response.status_code == 422
        detail = response.json()["error"]["details"][0]
        assert detail == {
            "field": "rules.entry",
            "message": "argument 'window' of sma is parameter 'n' = 900 bars; "
            "the data has only 500",
            "column": 12,
        }


async def test_a_rule_runs_in_the_workers_and_matches_its_builtin_twin(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=1) as system, http_client("uvicorn", system) as http:
        builtin = msgspec.to_builtins(tiny(bars=3000, params={"fast": 5, "slow": 20}))
        rules = {**builtin, "strategy": "rules", "rules": SMA}
        ids = []
        for body in (builtin, rules):
            response = await http.post("/backtests", json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["task_id"])
        for task_id in ids:
            assert await wait_status(system, task_id, "completed", "failed") == "completed"
        fills = []
        for task_id in ids:
            page = (await http.get(f"/backtests/{task_id}/fills")).json()["fills"]
            fills.append([{k: f[k] for k in ("bar", "side", "qty", "price", "fee")} for f in page])
        assert len(fills[0]) > 5
        assert fills[0] == fills[1]
        view = (await http.get(f"/backtests/{ids[1]}")).json()
        assert view["spec"]["rules"] == SMA
        assert view["spec"]["params"] == {"fast": 5, "slow": 20}
        assert view["spec"]["source"]["kind"] == "rules"
        builtin_view = (await http.get(f"/backtests/{ids[0]}")).json()
        assert builtin_view["spec"]["source"]["kind"] == "builtin"
        assert builtin_view["spec"]["source"]["version"]


async def test_queued_records_the_parameters_with_defaults(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        body = msgspec.to_builtins(tiny(params={}))
        body["source"] = {"kind": "plugin", "sha256": "forged"}
        task = (await http.post("/backtests", json=body)).json()
        events = (await http.get(f"/backtests/{task['task_id']}/events")).json()["events"]
        queued = events[0]["data"]["spec"]
        assert queued["params"] == {"fast": 10, "slow": 30}
        assert queued["source"]["kind"] == "builtin"  # the server's, not the client's


async def test_functions_and_strategies_list_what_rules_can_use(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        functions = (await http.get("/functions")).json()
        by_name = {f["name"]: f for f in functions["functions"]}
        assert by_name["sma"]["params"][1] == {
            "name": "window",
            "type": "window",
            "minimum": 1,
            "maximum": "bars",
        }
        assert by_name["kama"]["source"] == "talib"
        assert by_name["kama"]["params"][1]["default"] == 30
        assert by_name["atr"]["inputs"] == ["high", "low", "close"]
        strategies = (await http.get("/strategies")).json()["strategies"]
        sources = {s["name"]: s["source"] for s in strategies}
        assert sources["sma_cross"] == "builtin"
        assert sources["rules"] == "rules"
        ok = await http.post(
            "/rules/validate", json={"rules": SMA, "params": {"fast": 3, "slow": 9}}
        )
        assert ok.json()["valid"] is True
        assert set(ok.json()["params"]["properties"]) == {"fast", "slow"}
        bad = await http.post(
            "/rules/validate", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        wrong = await http.post("/rules/validate", json={"rules": "x"})
        assert wrong.status_code == 422
        assert wrong.json()["error"]["details"][0]["field"] == "rules"


async def test_a_retry_without_params_is_the_same_task(open_system: OpenSystem) -> None:
    """The log records the defaults; a retry of the same spec under its key still matches."""
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        body = msgspec.to_builtins(tiny(params={}))
        headers = {"Idempotency-Key": "k1"}
        first = await http.post("/backtests", json=body, headers=headers)
        again = await http.post("/backtests", json=body, headers=headers)
        assert first.status_code == 202
        assert again.status_code == 202
        assert again.json()["task_id"] == first.json()["task_id"]
        other = await http.post("/backtests", json={**body, "cash": 5.0}, headers=headers)
        assert other.status_code == 422
