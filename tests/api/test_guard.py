"""The request guard: Host (421), cross-origin writes (403), body media types (415), and the
security headers on every response. The browser case is in tests/dashboard/test_cross_site.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from coinbt.api import create_app
from coinbt.runtime import System
from coinbt.server import InsecureBindError, ServeOptions, check_bind, served_hosts
from tests.api.helpers import http_client
from tests.system import OpenSystem, system_factory, tiny

GOOD: dict[str, Any] = msgspec.to_builtins(tiny())
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def _client(system: System, base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(system, **kwargs))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        pytest.param({"Content-Type": "text/plain"}, "json", 415, id="text-plain"),
        pytest.param({"Content-Type": "text/plain;charset=UTF-8"}, "json", 415, id="fetch-string"),
        pytest.param({"Content-Type": "application/x-www-form-urlencoded"}, "json", 415, id="form"),
        pytest.param({"Content-Type": "multipart/form-data; boundary=x"}, "json", 415, id="multi"),
        pytest.param({}, "json", 415, id="blob-without-type"),
        pytest.param({**JSON, "Origin": "http://localhost:9999"}, "json", 403, id="other-port"),
        pytest.param({**JSON, "Origin": "https://attacker.example"}, "json", 403, id="other-site"),
        pytest.param({**JSON, "Origin": "null"}, "json", 403, id="opaque-origin"),
    ],
)
async def test_a_cross_site_submission_is_refused_and_nothing_is_queued(
    open_system: OpenSystem, headers: dict[str, str], body: str, code: int
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        response = await http.post("/backtests", content=msgspec.json.encode(GOOD), headers=headers)
        assert response.status_code == code, response.text
        expected = "unsupported_media_type" if code == 415 else "cross_origin"
        assert response.json()["error"]["code"] == expected
        assert await system.store.last_position() == 0


async def test_the_real_media_types_and_the_same_origin_are_accepted(
    open_system: OpenSystem,
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        spec = msgspec.json.encode(GOOD)
        same = {"Content-Type": "application/json; charset=utf-8", "Origin": "http://localhost"}
        assert (await http.post("/backtests", content=spec, headers=same)).status_code == 202
        csv = b"timestamp,open,high,low,close,volume\n1000,1,2,0.5,1.5,10\n2000,1,2,0.5,1.5,10\n"
        as_json = await http.post("/datasets?name=A-1m", content=csv, headers=JSON)
        assert as_json.status_code == 415
        assert "text/csv" in as_json.json()["error"]["message"]
        as_csv = await http.post(
            "/datasets?name=A-1m", content=csv, headers={"Content-Type": "text/csv"}
        )
        assert as_csv.status_code == 201, as_csv.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/backtests", id="read"),
        pytest.param("GET", "/events", id="events"),
        pytest.param("DELETE", "/backtests/{task_id}", id="cancel"),
        pytest.param("POST", "/backtests", id="submit"),
    ],
)
async def test_a_host_the_server_does_not_serve_is_misdirected(
    open_system: OpenSystem, method: str, path: str
) -> None:
    """DNS rebinding: attacker.example resolving to 127.0.0.1 reaches the server with its own
    name in Host, and is refused before anything is read or changed."""
    async with open_system(workers=0) as system, http_client("asgi", system) as http:
        task = (await http.post("/backtests", json=GOOD)).json()
        before = await system.store.last_position()
        async with _client(system, "http://attacker.example:8000") as evil:
            response = await evil.request(
                method,
                path.format(task_id=task["task_id"]),
                json=GOOD if method == "POST" else None,
            )
        assert response.status_code == 421, response.text
        assert response.json()["error"]["code"] == "misdirected_request"
        assert "--allowed-hosts" in response.json()["error"]["message"]
        assert await system.store.last_position() == before
        assert (await http.get(f"/backtests/{task['task_id']}")).json()["status"] == "queued"


@pytest.mark.parametrize(
    ("base_url", "allowed", "status"),
    [
        pytest.param("http://127.0.0.1:8000", (), 200, id="ipv4-loopback"),
        pytest.param("http://[::1]:8000", (), 200, id="ipv6-loopback"),
        pytest.param("http://LOCALHOST.", (), 200, id="case-and-dot"),
        pytest.param("http://coinbt.internal", ("coinbt.internal",), 200, id="allowed-name"),
        pytest.param("http://coinbt.internal:8000", ("other.internal",), 421, id="other-name"),
        pytest.param("http://anything.example", ("*",), 200, id="any"),
        pytest.param("http://localhost.attacker.example", (), 421, id="suffix-trick"),
    ],
)
async def test_allowed_hosts(
    open_system: OpenSystem, base_url: str, allowed: tuple[str, ...], status: int
) -> None:
    async with (
        open_system(workers=0) as system,
        _client(system, base_url, allowed_hosts=allowed) as http,
    ):
        assert (await http.get("/backtests")).status_code == status


def test_the_listening_address_is_served_unless_it_is_a_wildcard() -> None:
    assert served_hosts(ServeOptions(host="10.1.2.3", allowed_hosts=("a.b",))) == (
        "a.b",
        "10.1.2.3",
    )
    assert served_hosts(ServeOptions(host="0.0.0.0")) == ()


@pytest.mark.parametrize(
    ("path", "token"),
    [
        pytest.param("/", None, id="dashboard"),
        pytest.param("/static/app.js", None, id="static"),
        pytest.param("/health", None, id="health"),
        pytest.param("/openapi.json", None, id="json"),
        pytest.param("/nowhere", None, id="404"),
        pytest.param("/backtests", "s3cret-s3cret-s3cret", id="401"),
    ],
)
async def test_every_response_carries_the_security_headers(
    open_system: OpenSystem, path: str, token: str | None
) -> None:
    async with open_system(workers=0) as system, http_client("asgi", system, token) as http:
        response = await http.get(path)
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    async with open_system(workers=0) as system, _client(system, "http://evil.example") as evil:
        assert "frame-ancestors 'none'" in (await evil.get(path)).headers["content-security-policy"]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(" " * 20, id="spaces"),
        pytest.param("a", id="one-letter"),
        pytest.param("x" * 15, id="fifteen"),
        pytest.param("correct horse battery staple", id="with-spaces"),
    ],
)
def test_a_weak_token_is_refused_off_loopback(token: str) -> None:
    with pytest.raises(InsecureBindError, match="at least 16 characters"):
        check_bind(ServeOptions(host="0.0.0.0", token=token))
    check_bind(ServeOptions(host="127.0.0.1", token=token))  # on loopback, the user's choice


def test_a_strong_token_is_accepted_off_loopback() -> None:
    check_bind(ServeOptions(host="0.0.0.0", token="x" * 16))
