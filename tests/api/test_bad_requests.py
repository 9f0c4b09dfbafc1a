"""Bad requests: the right 4xx, an error naming the field, no new event, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, tiny


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


GOOD: dict[str, Any] = msgspec.to_builtins(tiny())


def with_(**changes: Any) -> dict[str, Any]:
    spec = {**GOOD, **changes}
    return {k: v for k, v in spec.items() if v is not ...}


CASES = [
    # (method, path, body (bytes | dict | None), headers, status, error code, field named)
    pytest.param(
        "POST", "/backtests", b"{not json", {}, 400, "malformed_json", None, id="malformed-json"
    ),
    pytest.param("POST", "/backtests", b"", {}, 400, "empty_body", None, id="empty-body"),
    pytest.param(
        "POST", "/backtests", b"[1, 2]", {}, 422, "invalid_spec", "[0]", id="array-of-non-objects"
    ),
    pytest.param("POST", "/backtests", b"7", {}, 422, "invalid_spec", "", id="not-an-object"),
    pytest.param(
        "POST", "/backtests", with_(cash="lots"), {}, 422, "invalid_spec", "cash", id="wrong-type"
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(strategy="moonshot"),
        {},
        422,
        "invalid_spec",
        "strategy",
        id="unknown-strategy",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(params={"fast": 30, "slow": 10}),
        {},
        422,
        "invalid_spec",
        "params.fast",
        id="fast-ge-slow",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(params={"fast": True}),
        {},
        422,
        "invalid_spec",
        "params.fast",
        id="bool-is-not-int",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(params={"speed": 3}),
        {},
        422,
        "invalid_spec",
        "params.speed",
        id="unknown-param",
    ),
    pytest.param(
        "POST", "/backtests", with_(cash=-5), {}, 422, "invalid_spec", "cash", id="negative-cash"
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(fee_bps=-1),
        {},
        422,
        "invalid_spec",
        "fee_bps",
        id="negative-fee",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(timeout_s=0),
        {},
        422,
        "invalid_spec",
        "timeout_s",
        id="zero-timeout",
    ),
    pytest.param(
        "POST", "/backtests", with_(fill="tomorrow"), {}, 422, "invalid_spec", "fill", id="bad-fill"
    ),
    pytest.param(
        "POST", "/backtests", with_(data=...), {}, 422, "invalid_spec", "data", id="missing-data"
    ),
    pytest.param(
        "POST", "/backtests", with_(data={}), {}, 422, "invalid_spec", "data", id="empty-data"
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"dataset": "NOPE-1m"}),
        {},
        422,
        "invalid_spec",
        "data.dataset",
        id="unknown-dataset",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"synthetic": {"bars": 10**12}}),
        {},
        422,
        "invalid_spec",
        "data.synthetic.bars",
        id="too-many-bars",
    ),
    pytest.param(
        "POST", "/backtests", with_(extra=1), {}, 422, "invalid_spec", "extra", id="unknown-field"
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"synthetic": {}}),
        {},
        422,
        "invalid_spec",
        "data.synthetic.bars",
        id="missing-nested-field",
    ),
    pytest.param(
        "POST",
        "/backtests",
        b"{" + b" " * 70_000 + b"}",
        {},
        413,
        "payload_too_large",
        None,
        id="oversized-body",
    ),
    pytest.param(
        "POST",
        "/backtests",
        GOOD,
        {"Idempotency-Key": "k" * 300},
        422,
        "invalid_spec",
        "Idempotency-Key",
        id="long-idempotency-key",
    ),
    pytest.param(
        "GET", "/backtests/bad%20id!", None, {}, 400, "invalid_request", "task_id", id="bad-id"
    ),
    pytest.param(
        "GET", "/backtests?cursor=zzz", None, {}, 400, "invalid_request", "cursor", id="bad-cursor"
    ),
    pytest.param(
        "GET",
        "/backtests?cursor=c9999999999999999999",
        None,
        {},
        400,
        "invalid_request",
        "cursor",
        id="cursor-beyond-int64",
    ),
    pytest.param(
        "GET",
        "/backtests?cursor=c%C2%B2",
        None,
        {},
        400,
        "invalid_request",
        "cursor",
        id="cursor-superscript-digit",
    ),
    pytest.param(
        "GET", "/events?after=%C2%B2", None, {}, 400, "invalid_request", "after", id="after-digit"
    ),
    pytest.param(
        "GET",
        "/events",
        None,
        {"Last-Event-ID": "9223372036854775808"},
        400,
        "invalid_request",
        "Last-Event-ID",
        id="last-event-id-beyond-int64",
    ),
    pytest.param(
        "GET", "/backtests/abc%0A", None, {}, 400, "invalid_request", "task_id", id="id-newline"
    ),
    pytest.param(
        "DELETE", "/backtests/abc%0A", None, {}, 400, "invalid_request", "task_id", id="cancel-nl"
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"synthetic": {"bars": 100, "interval": "999999999999999999999d"}}),
        {},
        422,
        "invalid_spec",
        "data.synthetic.interval",
        id="huge-interval",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"synthetic": {"bars": 100, "interval": "400d"}}),
        {},
        422,
        "invalid_spec",
        "data.synthetic.interval",
        id="interval-over-a-year",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(data={"synthetic": {"bars": 100, "interval": "\u0661m"}}),
        {},
        422,
        "invalid_spec",
        "data.synthetic.interval",
        id="interval-arabic-digit",
    ),
    pytest.param(
        "POST",
        "/backtests",
        with_(timeout_s=1e308),
        {},
        422,
        "invalid_spec",
        "timeout_s",
        id="huge-timeout",
    ),
    pytest.param(
        "GET", "/backtests?limit=0", None, {}, 400, "invalid_request", "limit", id="zero-limit"
    ),
    pytest.param(
        "GET", "/backtests?limit=ten", None, {}, 400, "invalid_request", "limit", id="text-limit"
    ),
    pytest.param(
        "GET", "/backtests?status=done", None, {}, 400, "invalid_request", "status", id="bad-status"
    ),
    pytest.param(
        "GET", "/events?after=-1", None, {}, 400, "invalid_request", "after", id="negative-after"
    ),
    pytest.param(
        "GET", "/backtests/nope/events", None, {}, 404, "not_found", None, id="events-unknown"
    ),
    pytest.param(
        "GET", "/backtests/nope/equity", None, {}, 404, "not_found", None, id="equity-unknown"
    ),
    pytest.param(
        "DELETE", "/backtests/nope", None, {}, 404, "not_found", None, id="cancel-unknown"
    ),
    pytest.param("PUT", "/backtests", None, {}, 405, "method_not_allowed", None, id="wrong-method"),
    pytest.param("GET", "/nowhere", None, {}, 404, "not_found", None, id="unknown-route"),
    pytest.param(
        "POST",
        "/datasets",
        b"timestamp,open\n",
        {},
        400,
        "invalid_request",
        "name",
        id="dataset-without-name",
    ),
    pytest.param(
        "POST",
        "/datasets?name=../etc",
        b"x",
        {},
        422,
        "invalid_spec",
        "name",
        id="dataset-bad-name",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code", "field"), CASES)
async def test_bad_request(
    open_system: OpenSystem,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | None,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        content = body if isinstance(body, bytes) else None
        json_body = body if isinstance(body, dict) else None
        if content:  # the endpoint's own media type: these cases are about the body
            csv = path.startswith("/datasets")
            headers = {"Content-Type": "text/csv" if csv else "application/json", **headers}
        response = await http.request(
            method, path, content=content, json=json_body, headers=headers
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
        assert "Traceback" not in response.text
        if field is not None:
            assert field in [d["field"] for d in error["details"]], error
        assert await system.store.last_position() == 0


async def test_task_of_another_status_reads_fine_but_equity_is_404(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        task = (await http.post("/backtests", json=GOOD)).json()
        response = await http.get(f"/backtests/{task['task_id']}/equity")
        assert response.status_code == 404
        assert "queued" in response.json()["error"]["message"]
        fills = (await http.get(f"/backtests/{task['task_id']}/fills")).json()
        assert fills["fills"] == []
        trades = await http.get(f"/backtests/{task['task_id']}/trades")
        assert trades.status_code == 400
        assert trades.json()["error"]["details"]["status"] == "queued"


@pytest.mark.parametrize(
    "value",
    [pytest.param(b"\xc2\xb2", id="utf8-superscript"), pytest.param(b"\xb2", id="latin1")],
)
async def test_a_non_ascii_last_event_id_is_a_400(open_system: OpenSystem, value: bytes) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.get("/events", headers=[(b"Last-Event-ID", value)])
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"][0]["field"] == "Last-Event-ID"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("PUT", "/backtests", "GET, HEAD, POST", id="backtests"),
        pytest.param("TRACE", "/backtests/abc", "DELETE, GET, HEAD", id="task"),
        pytest.param("POST", "/health", "GET, HEAD", id="health"),
        pytest.param("DELETE", "/datasets", "GET, HEAD, POST", id="datasets"),
        pytest.param("POST", "/static/app.js", "GET, HEAD", id="static-file"),
    ],
)
async def test_every_405_says_which_methods_are_allowed(
    open_system: OpenSystem, method: str, path: str, allow: str
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.request(method, path)
        assert response.status_code == 405
        assert response.headers["allow"] == allow  # RFC 9110 section 15.5.6
        assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_nested_field_error_names_its_path_once(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        body = {"strategy": "sma_cross", "data": {"synthetic": {"bars": 300, "interval": "0m"}}}
        response = await http.post("/backtests", json=body)
        assert response.status_code == 422
        [detail] = response.json()["error"]["details"]
        assert detail["field"] == "data.synthetic.interval"
        assert detail["message"].startswith("invalid interval '0m'")  # not "interval: ..."
        assert "interval: interval" not in response.json()["error"]["message"]


async def test_every_badly_typed_field_is_named_not_only_the_first(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        body = {
            "strategy": 5,
            "data": {"synthetic": {"bars": "many"}},
            "cash": "lots",
            "fee_bps": -1,
            "colour": "red",
        }
        response = await http.post("/backtests", json=body)
        assert response.status_code == 422
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert sorted(fields) == ["cash", "colour", "data.synthetic.bars", "fee_bps", "strategy"]
        assert await system.store.last_position() == 0
