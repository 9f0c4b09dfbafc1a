"""schemathesis against the app, in-process: every phase (examples, coverage, fuzzing, stateful
through the schema's links) and every check but ``use_after_free`` (DELETE cancels a task, and
a cancelled task stays readable by contract), a bounded number of examples; any finding fails.

The service runs inside the app's ASGI lifespan, which schemathesis starts on its own event loop
(as a server would), so the requests and the actors share one loop. Workers run the tasks the
stateful phase submits, so it reaches completed tasks' fills, equity and positions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python.asgi import HOST, shutdown_lifespans

from coinbt.api import create_app
from coinbt.clock import ManualClock, SequentialIds
from coinbt.runtime import Config, System, open_system

MAX_BARS = 2_000  # every generated backtest is small: the run stays bounded
# positive_data_acceptance's default expectation for a schema-valid request.
ACCEPTED = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]
NOT_5XX = ["2xx", "3xx", "4xx"]  # not_a_server_error's default expectation


# What JSON Schema cannot say, answered 422 as the schema describes: a spec with fast >= slow (and
# the like), an unknown dataset, an empty range, a grid naming an unknown parameter; a CSV body
# whose rows do not parse. And a JSON number like 5.0 where an integer goes: JSON Schema calls it
# an integer, msgspec decodes integers only (docs/differences.md).
_SPEC_RULES = {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 422]}}
# A task's state, not the request, answers 400 (as the schema documents): a completed or failed
# task cannot be cancelled (DESIGN section 3); its files, analysis or a sweep's rows exist once it
# completed.
_STATE = {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, 400]}}
# A completed task's artifact whose upload is still pending: 503 artifact_pending with
# Retry-After, as the schema documents.
_PENDING = {"not_a_server_error": {"expected-statuses": [*NOT_5XX, 503]}}
CHECKS: dict[str, dict[str, Any]] = {
    "POST /backtests": _SPEC_RULES,
    "POST /sweeps": _SPEC_RULES,
    "POST /datasets": _SPEC_RULES,
    "POST /rules/validate": _SPEC_RULES,
    "DELETE /backtests/{task_id}": _STATE,
    "DELETE /sweeps/{task_id}": _STATE,
    "GET /backtests/{task_id}/equity": {**_STATE, **_PENDING},
    "GET /backtests/{task_id}/fills": {**_STATE, **_PENDING},
    "GET /backtests/{task_id}/trades": _STATE,
    "GET /backtests/{task_id}/prices": _STATE,
    "GET /backtests/{task_id}/analysis": _STATE,
    "GET /backtests/{task_id}/report": _STATE,
    "GET /sweeps/{task_id}/rows": {**_STATE, **_PENDING},
    "GET /sweeps/{task_id}/table": {**_STATE, **_PENDING},
}


class ServiceInLifespan:
    """The coinbt app; its lifespan opens the service (the System) and closes it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app: Any = None
        self.system: System | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with AsyncExitStack() as stack:
            self.system = await stack.enter_async_context(open_system(self.config))
            self.app = create_app(self.system, allowed_hosts=[HOST])
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceInLifespan]:
    config = Config(
        db=tmp_path / "fuzz.db",
        workers=1,
        max_bars=MAX_BARS,
        clock=ManualClock(tick=timedelta(milliseconds=1)),
        ids=SequentialIds("fz"),
        shutdown_grace_s=0.0,
    )
    service = ServiceInLifespan(config)
    try:
        yield service
    finally:
        shutdown_lifespans()


def _findings(stream: Any) -> tuple[list[str], dict[str, int]]:
    """Every failed check and engine error, and how often each (phase, operation, status) was
    answered."""
    findings: list[str] = []
    calls: dict[str, int] = {}
    for event in stream:
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            recorder = event.recorder
            phase = getattr(event, "phase", "fuzzing")
            for case_id, checks in recorder.checks.items():
                case = recorder.cases[case_id].value
                label = f"{case.method.upper()} {case.path}"
                response = recorder.find_response(case_id=case_id)
                status = None if response is None else response.status_code
                key = f"{phase} {label} {status}"
                calls[key] = calls.get(key, 0) + 1
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        body = b"" if response is None else response.content[:300]
                        answer = body.decode(errors="replace")  # Parquet answers are binary
                        findings.append(
                            f"{failure.code} {check.name} {phase}: {label} -> {status} "
                            f"{answer}\n{failure.title}: {failure.message[:300]}\n"
                            f"{check.failure_info.code_sample[:600]}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            findings.append(f"error: {event!r}"[:800])
    return findings, calls


@pytest.mark.slow
# About 25 s of CPU (4 examples per operation and mode, 20 stateful steps); the limit is twice the
# suite's 60 s so that a 2-vCPU machine shared with other jobs does not time it out.
@pytest.mark.timeout(120)
def test_schemathesis_finds_nothing_in_any_phase(service: ServiceInLifespan) -> None:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "generation": {"max-examples": 4, "deterministic": True, "mode": "all"},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": 20},
            },
            "checks": {"enabled": True, "use_after_free": {"enabled": False}},
            "operations": [
                {"include-name": name, "checks": checks} for name, checks in CHECKS.items()
            ],
            "max-stream-events": 5,
            "request-timeout": 30,
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", service, config=config)
    findings, calls = _findings(from_schema(schema).execute())
    assert findings == [], "\n\n".join(findings)
    # The stateful phase followed the links to real tasks, and the workers ran some of them.
    reached = {key for key in calls if key.startswith("stateful ") and key.endswith(" 200")}
    assert "stateful GET /backtests/{task_id} 200" in reached, sorted(calls)
    assert "stateful GET /backtests/{task_id}/positions 200" in reached, sorted(calls)
    assert "stateful GET /sweeps/{task_id} 200" in reached, sorted(calls)
    # A cancel found the task: cancelled it (200) or found it already finished (400).
    cancels = {f"stateful DELETE /backtests/{{task_id}} {status}" for status in (200, 400)}
    assert cancels & set(calls), sorted(calls)
