"""A bounded fuzz pass over the OpenAPI schema against a real `coinbt serve`: no 5xx, and every
response conforms to the documented schema."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinbt",
            "serve",
            "--db",
            str(tmp_path / "f.db"),
            "--port",
            "0",
            "--workers",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        assert "coinbt is serving on" in line, child.stderr.read() if child.stderr else line
        yield line.split()[4].rstrip("/")
    finally:
        child.terminate()
        _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "Traceback" not in err, err


def test_fuzzing_the_schema_finds_no_server_error(server: str) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: list[Any] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        label = operation.label

        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if case.path == "/events" and "text/event-stream" in str(case.headers or ""):
                return  # an endless stream: tested in test_service.py
            response = case.call(base_url=server, timeout=30)
            try:
                case.validate_response(
                    response, checks=(not_a_server_error, response_schema_conformance)
                )
            except Exception as e:  # collect them all, then fail once with every one listed
                failures.append((label, response.status_code, str(e)[:500]))  # noqa: B023

        check()
    assert operations >= 14
    assert failures == []
