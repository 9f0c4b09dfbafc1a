"""``/static/status.js``: the dashboard's statuses come from ``lifecycle.Status``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coinbt.api.app import DASHBOARD
from coinbt.api.vocabulary import STATUS_AFTER
from coinbt.lifecycle import TERMINAL, UNFINISHED, Status, TaskState, evolve
from tests import factories
from tests.api.helpers import asgi_client
from tests.system import OpenSystem, system_factory

_EXPORT = re.compile(r"^export const (\w+) = Object\.freeze\((.*)\);$", re.M)


@pytest.fixture
def open_system(tmp_path: Path) -> OpenSystem:
    return system_factory(tmp_path)


def _exports(script: str) -> dict[str, object]:
    return {name: json.loads(value) for name, value in _EXPORT.findall(script)}


async def test_the_served_module_is_the_lifecycle_vocabulary(open_system: OpenSystem) -> None:
    async with open_system(workers=0) as system, asgi_client(system, token="t" * 20) as http:
        answer = await http.get("/static/status.js")  # public, like the other static files
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    exports = _exports(answer.text)
    assert exports == {
        "Status": {s.name: s.value for s in Status},
        "STATUSES": [s.value for s in Status],
        "UNFINISHED": [s.value for s in UNFINISHED],
        "TERMINAL": [s.value for s in Status if s in TERMINAL],
        "STATUS_AFTER": {k: v.value for k, v in STATUS_AFTER.items()},
    }


def test_status_after_each_event_is_the_lifecycle_s() -> None:
    events = {
        "Queued": factories.queued(),
        "Started": factories.started(),
        "Completed": factories.completed(),
        "Failed": factories.failed(),
        "Cancelled": factories.cancelled(),
    }
    after = {
        name: evolve(TaskState("t", status=Status.RUNNING), event).status
        for name, event in events.items()
    }
    assert after == STATUS_AFTER


def test_every_status_name_a_dashboard_module_imports_is_exported() -> None:
    from coinbt.api.vocabulary import status_script

    exported = set(_exports(status_script()))
    imports = re.compile(r"import \{([^}]*)\} from \"\./status\.js\"")
    used = 0
    for path in sorted((DASHBOARD / "static").glob("*.js")):
        for names in imports.findall(path.read_text()):
            for name in names.split(","):
                assert name.split(" as ")[0].strip() in exported, f"{path.name}: {name}"
                used += 1
    assert used >= 5  # store, tasks, sweeps, detail, widgets and compare import from it
