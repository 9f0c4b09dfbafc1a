"""The import ladder (STYLE.md rule 1) for every module of the package, and honest ``__all__``.

Each module belongs to one rung; a module may import (at module level, outside
``if TYPE_CHECKING:``) only from its own rung or lower ones. Imports inside functions are allowed
to reach up (a lazy import is how the pure engine offers ``result.report()`` without depending on
the report code at import time), so this checks what importing a module pulls in.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

import coinbt
from coinbt import defaults
from coinbt.lifecycle import Status

_PACKAGE = Path(coinbt.__file__).parent

LADDER: tuple[tuple[str, ...], ...] = (
    ("coinbt.errors", "coinbt.clock", "coinbt.dburl", "coinbt.defaults", "coinbt.__init__"),
    ("coinbt.events",),
    ("coinbt.engine",),
    ("coinbt.lifecycle", "coinbt.scheduler"),
    (
        "coinbt.store",
        "coinbt.artifacts",
        "coinbt.data",
        "coinbt.datasets",
        "coinbt.specs",
        "coinbt.sweeps",
        "coinbt.sweep_table",
        "coinbt.report",
    ),
    ("coinbt.projections",),
    ("coinbt.backends",),
    (
        "coinbt.results",
        "coinbt.backend",
        "coinbt.executor",
        "coinbt.backup",
        "coinbt.artifacts.migrate",
    ),
    ("coinbt.actors",),
    ("coinbt.runtime", "coinbt.rerun", "coinbt.demo", "coinbt._connection"),
    ("coinbt.api", "coinbt.dashboard"),
    ("coinbt.server", "coinbt.cli", "coinbt.__main__"),
)
"""Lowest rung first: events <- engine <- stores <- projections <- backends <- actors <- runtime
<- api/cli. Each backend (one package) sits above the neutral store and projection code."""


def _module(path: Path) -> str:
    parts = path.relative_to(_PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _rung(module: str) -> int:
    best: tuple[int, int] | None = None
    for rung, prefixes in enumerate(LADDER):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (rung, len(prefix))
    if module == "coinbt":
        return 0  # the package root holds only __version__
    if best is None:
        raise AssertionError(f"{module} is on no rung of LADDER: place it there")
    return best[0]


def _module_level_imports(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in tree.body:  # not inside functions, and not under `if TYPE_CHECKING:`
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "coinbt" or node.module.startswith("coinbt."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "coinbt"]
    return found


_MODULES = sorted(_PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _MODULES, ids=lambda p: _module(p))
def test_imports_go_down_the_ladder(path: Path) -> None:
    me = _module(path)
    rung = _rung(me)
    upward = [
        target
        for target in _module_level_imports(ast.parse(path.read_text()))
        if _rung(target) > rung
    ]
    assert upward == [], f"{me} (rung {rung}) imports from higher rungs: {upward}"


def _public(path: Path) -> bool:
    return not any(part.startswith("_") for part in path.relative_to(_PACKAGE).parts[:-1]) and (
        path.name == "__init__.py" or not path.name.startswith("_")
    )


@pytest.mark.parametrize("path", [p for p in _MODULES if _public(p)], ids=lambda p: _module(p))
def test_every_public_module_has_an_honest_all(path: Path) -> None:
    module = importlib.import_module(_module(path))
    names = getattr(module, "__all__", None)
    if names is None:  # then it may hold no public name but its submodules
        public = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and n not in _IMPORTED_ONLY and not isinstance(v, ModuleType)
        ]
        assert public == [] or path.name == "__main__.py", (
            f"{module.__name__} has public names {public} but no __all__"
        )
        return
    assert isinstance(names, tuple), f"{module.__name__}.__all__ should be a tuple"
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == [], f"{module.__name__}.__all__ names what it lacks: {missing}"
    assert len(set(names)) == len(names), f"{module.__name__}.__all__ repeats a name"


_IMPORTED_ONLY = frozenset({"annotations"})


def test_the_ladder_covers_what_the_package_holds() -> None:
    """A new top-level module or package must be placed on a rung (else the ladder is silent)."""
    for path in _MODULES:
        _rung(_module(path))


def test_an_upward_import_is_caught_and_a_lazy_one_is_not() -> None:
    source = (
        "from coinbt.errors import CoinbtError\n"
        "import coinbt.api.app\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from coinbt.runtime import System\n"
        "def report():\n"
        "    from coinbt.report import tearsheet\n"
    )
    imports = _module_level_imports(ast.parse(source))
    assert imports == ["coinbt.errors", "coinbt.api.app"]
    engine = _rung("coinbt.engine.result")
    assert [t for t in imports if _rung(t) > engine] == ["coinbt.api.app"]
    assert _rung("coinbt.store.base") < _rung("coinbt.projections.fold") < _rung("coinbt.api")
    assert _rung("coinbt.projections.fold") < _rung("coinbt.backends.sqlite.store")
    assert _rung("coinbt.backends.postgres.store") < _rung("coinbt.actors.worker")
    with pytest.raises(AssertionError, match="on no rung"):
        _rung("coinbt.newthing")


# --- one status vocabulary ----------------------------------------------------------------------

_STATUS_NAMES = frozenset(str(s) for s in Status)
_VOCABULARY_HOME = _PACKAGE / "lifecycle.py"
_SCRIPTS = Path(__file__).parent.parent / "scripts"
_DASHBOARD_JS = sorted((_PACKAGE / "dashboard" / "static").glob("*.js"))


def _status_vocabularies(source: str) -> list[int]:
    """The lines of ``source`` (Python) that spell a status vocabulary of their own: a literal
    tuple, list, set or dict (keys or values) naming two or more task statuses, which a
    ``Literal[...]`` of them is too. One status compared as data (``== "running"``) is not."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items: list[ast.expr | None] = list(node.elts)
        elif isinstance(node, ast.Dict):
            for items in (node.keys, node.values):
                if _names_statuses(items):
                    found.append(node.lineno)
            continue
        else:
            continue
        if _names_statuses(items):
            found.append(node.lineno)
    return sorted(set(found))


def _names_statuses(items: list[ast.expr | None]) -> bool:
    named = {
        item.value
        for item in items
        if isinstance(item, ast.Constant) and isinstance(item.value, str)
    }
    return len(named & _STATUS_NAMES) >= 2


_JS_STRING = re.compile(r"""["'`]([a-z]+)["'`]""")
_JS_COLLECTION = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}")


def _js_status_vocabularies(source: str) -> list[str]:
    """The array or object literals of a dashboard module that name two or more statuses
    (quoted, or as object keys: ``{ queued: 0, running: 1 }``)."""
    found = []
    for match in _JS_COLLECTION.finditer(source):
        text = match.group()
        named = set(_JS_STRING.findall(text)) | set(re.findall(r"\b([a-z]+)\s*:", text))
        if len(named & _STATUS_NAMES) >= 2:
            found.append(text)
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in _MODULES if p != _VOCABULARY_HOME] + sorted(_SCRIPTS.glob("*.py")),
    ids=lambda p: p.name if p.parent == _SCRIPTS else _module(p),
)
def test_only_the_lifecycle_names_the_statuses(path: Path) -> None:
    lines = _status_vocabularies(path.read_text())
    assert lines == [], (
        f"{path.name} spells its own set of task statuses at lines {lines}: use "
        "coinbt.lifecycle.Status (and TERMINAL / UNFINISHED)"
    )


@pytest.mark.parametrize("path", _DASHBOARD_JS, ids=lambda p: p.name)
def test_the_dashboard_takes_its_statuses_from_the_server(path: Path) -> None:
    """The dashboard imports ``/static/status.js``, generated from ``lifecycle.Status``."""
    assert _js_status_vocabularies(path.read_text()) == []


def test_a_second_status_vocabulary_is_caught() -> None:
    source = (
        'STATUSES = ("queued", "running", "completed")\n'
        'Kind = Literal["completed", "failed"]\n'
        'RANK = {"queued": 0, "running": 1}\n'
        'done = view.status in ["failed", "cancelled"]\n'
        'STATES = ("pending", "stored", "failed")\n'  # the outbox's states: one status name
        'ok = view.status == "completed"\n'
    )
    assert _status_vocabularies(source) == [1, 2, 3, 4]
    js = (
        'const FILTERS = ["queued", "running"];\n'
        "const RANK = { queued: 0, running: 1, completed: 2 };\n"
        'if (task.status === Status.COMPLETED) show("failed");\n'
    )
    assert len(_js_status_vocabularies(js)) == 2


# --- each default in one place ------------------------------------------------------------------

_TIED_PARAMETERS = {  # a parameter or field of this name defaults to coinbt.defaults.<value>
    "queue_capacity": "QUEUE_CAPACITY",
    "max_attempts": "MAX_ATTEMPTS",
    "heartbeat_s": "HEARTBEAT_S",
    "mailbox": "MAILBOX",
    "finished_cache": "FINISHED_CACHE",
    "shutdown_grace_s": "SHUTDOWN_GRACE_S",
    "max_bars": "MAX_BARS",
    "max_combinations": "MAX_COMBINATIONS",
    "upload_backoff_s": "UPLOAD_BACKOFF_S",
    "backoff_s": "UPLOAD_BACKOFF_S",
    "host": "HOST",
    "port": "PORT",
    "keep_alive_s": "KEEP_ALIVE_S",
    "max_connections": "MAX_CONNECTIONS",
    "max_streams": "MAX_STREAMS",
    "head_timeout_s": "HEAD_TIMEOUT_S",
}
_TIED_CONSTANTS = frozenset(defaults.__all__) | {
    "DEFAULT_MAX_BARS",
    "DEFAULT_MAX_COMBINATIONS",
    "DEFAULT_URL",
    "SPEC_LIMIT",
    "BATCH_LIMIT",
    "BODY_LIMIT",
    "UPLOAD_LIMIT",
    "SWEEP_LIMIT",
}
_TIED_FLAGS = {
    "--queue-capacity": "QUEUE_CAPACITY",
    "--max-attempts": "MAX_ATTEMPTS",
    "--heartbeat": "HEARTBEAT_S",
    "--host": "HOST",
    "--port": "PORT",
}


def _is_literal(node: ast.expr | None) -> bool:
    """A value spelled out (``10_000``, ``64 * 1024``, ``(0.5, 60.0)``, ``"127.0.0.1"``); None
    (no value) is not one."""
    match node:
        case ast.Constant(value=value):
            return value is not None
        case ast.BinOp(left=left, right=right):
            return _is_literal(left) and _is_literal(right)
        case ast.UnaryOp(operand=operand):
            return _is_literal(operand)
        case ast.Tuple(elts=elts):
            return bool(elts) and all(_is_literal(e) for e in elts)
    return False


def _own_defaults(source: str) -> list[str]:
    """What ``source`` spells that belongs in ``coinbt.defaults``: a literal default of a tied
    parameter or field, a literal tied constant, a ``coinbt serve`` flag's literal default."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            pairs = list(
                zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
            )
            pairs += [
                (a, d)
                for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                if d is not None
            ]
            found += [
                f"{node.name}({a.arg}=...) line {d.lineno}"
                for a, d in pairs
                if a.arg in _TIED_PARAMETERS and _is_literal(d)
            ]
        elif isinstance(node, ast.ClassDef):
            found += [
                f"{node.name}.{item.target.id} line {item.lineno}"
                for item in node.body
                if isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and item.target.id in _TIED_PARAMETERS
                and _is_literal(item.value)
            ]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [
                f"{t.id} line {node.lineno}"
                for t in targets
                if isinstance(t, ast.Name) and t.id in _TIED_CONSTANTS and _is_literal(node.value)
            ]
        elif isinstance(node, ast.Call) and node.args:
            flag = node.args[0]
            if isinstance(flag, ast.Constant) and flag.value in _TIED_FLAGS:
                found += [
                    f"{flag.value} default line {k.lineno}"
                    for k in node.keywords
                    if k.arg == "default" and _is_literal(k.value)
                ]
    return found


_DEFAULTS_HOME = _PACKAGE / "defaults.py"


@pytest.mark.parametrize(
    "path", [p for p in _MODULES if p != _DEFAULTS_HOME], ids=lambda p: _module(p)
)
def test_defaults_are_spelled_only_in_coinbt_defaults(path: Path) -> None:
    assert _own_defaults(path.read_text()) == [], f"use coinbt.defaults in {_module(path)}"


def test_a_default_spelled_twice_is_caught() -> None:
    source = (
        "SMALL_BARS = 50_000\n"
        "SPEC_LIMIT = 64 * 1024\n"
        "MAX_BATCH = defaults.MAX_BATCH\n"  # named: fine
        "class Config:\n"
        "    queue_capacity: int = 10_000\n"
        "    heartbeat_s: float = defaults.HEARTBEAT_S\n"
        "    backup_every_s: float | None = None\n"
        "def __init__(self, store, *, mailbox: int = 4096, max_attempts=defaults.MAX_ATTEMPTS):\n"
        "    pass\n"
        "def serve(host='127.0.0.1', port=None): pass\n"
        "serve.add_argument('--max-attempts', type=int, default=3)\n"
        "serve.add_argument('--queue-capacity', default=defaults.QUEUE_CAPACITY)\n"
        "serve.add_argument('--top', default=10)\n"  # not a service default
    )
    assert _own_defaults(source) == [
        "SMALL_BARS line 1",
        "SPEC_LIMIT line 2",
        "Config.queue_capacity line 5",
        "__init__(mailbox=...) line 8",
        "serve(host=...) line 10",
        "--max-attempts default line 11",
    ]


def test_the_system_s_defaults_are_coinbt_defaults() -> None:
    import inspect

    from coinbt.actors.task_manager import TaskManager
    from coinbt.runtime import Config
    from coinbt.server import ServeOptions

    config = Config(db="x.db")
    options = ServeOptions()
    seen = 0
    for owner in (config, options):
        for name, value_name in _TIED_PARAMETERS.items():
            if hasattr(owner, name):
                assert getattr(owner, name) == getattr(defaults, value_name), name
                seen += 1
    for name, parameter in inspect.signature(TaskManager).parameters.items():
        if name in _TIED_PARAMETERS:
            assert parameter.default == getattr(defaults, _TIED_PARAMETERS[name]), name
            seen += 1
    assert seen >= 12
    assert config.backup_every_s is defaults.BACKUP_EVERY_S


def test_coinbt_serve_and_its_help_read_coinbt_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change the values in coinbt.defaults: the flags' defaults and --help follow."""
    from coinbt.cli import build_parser

    changed = {"QUEUE_CAPACITY": 12_345, "MAX_ATTEMPTS": 7, "HEARTBEAT_S": 3.5, "PORT": 8765}
    for name, value in changed.items():
        monkeypatch.setattr(defaults, name, value)
    parser = build_parser()
    args = parser.parse_args(["serve"])
    assert (args.queue_capacity, args.max_attempts, args.heartbeat, args.port) == (
        12_345,
        7,
        3.5,
        8765,
    )
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    help_text = " ".join(subparsers.choices["serve"].format_help().split())
    for shown in ("queued tasks before 429 (12345)", "restarts (7)", "models (3.5)", "(8765;"):
        assert shown in help_text


def test_building_the_command_line_imports_no_msgspec() -> None:
    """``--status`` choices come from ``lifecycle.Status`` lazily: ``scripts/migrate`` runs
    ``coinbt migrate`` on a bare python3, where the parser must build from the stdlib alone."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom coinbt.cli import build_parser\n"
        "args = build_parser().parse_args(['list', '--status', 'running'])\n"
        "print(args.status, 'msgspec' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    # checking the choice imported lifecycle (and so msgspec): only parsing --status does
    assert done.stdout.split() == ["running", "True"]
    code = code.replace("['list', '--status', 'running']", "['list']")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["None", "False"]


_BACKENDS = _PACKAGE / "backends"


def _all_imports(tree: ast.Module) -> list[str]:
    """Every coinbt module imported anywhere in the module, lazily or not."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m == "coinbt" or m.startswith("coinbt.")]


@pytest.mark.parametrize(
    "path", sorted(_BACKENDS.glob("*/*.py")), ids=lambda p: _module(p).removeprefix("coinbt.")
)
def test_a_backend_imports_no_other_backend(path: Path) -> None:
    """Each backend package stands alone on the shared code below it (docs/storage.md)."""
    mine = path.relative_to(_BACKENDS).parts[0]
    others = [
        target
        for target in _all_imports(ast.parse(path.read_text()))
        if target.startswith("coinbt.backends.") and target.split(".")[2] != mine
    ]
    assert others == [], f"{_module(path)} imports another backend: {others}"


def test_every_backend_is_checked() -> None:
    kinds = sorted(p.name for p in _BACKENDS.iterdir() if (p / "__init__.py").is_file())
    assert kinds == ["memory", "postgres", "sqlite"]
    assert _all_imports(ast.parse("def f():\n    from coinbt.backends.sqlite import x\n")) == [
        "coinbt.backends.sqlite"
    ]
