"""The import ladder (STYLE.md rule 1) for every module of the package, and honest ``__all__``.

Each module belongs to one rung; a module may import (at module level, outside
``if TYPE_CHECKING:``) only from its own rung or lower ones. Imports inside functions are allowed
to reach up (a lazy import is how the pure engine offers ``result.report()`` without depending on
the report code at import time), so this checks what importing a module pulls in.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

import coinbt

_PACKAGE = Path(coinbt.__file__).parent

LADDER: tuple[tuple[str, ...], ...] = (
    ("coinbt.errors", "coinbt.clock", "coinbt.dburl", "coinbt.__init__"),
    ("coinbt.events",),
    ("coinbt.engine",),
    ("coinbt.lifecycle",),
    (
        "coinbt.store",
        "coinbt.artifacts",
        "coinbt.data",
        "coinbt.datasets",
        "coinbt.datasets_pg",
        "coinbt.backup",
        "coinbt.specs",
        "coinbt.sweeps",
        "coinbt.sweep_table",
        "coinbt.report",
    ),
    ("coinbt.projections",),
    ("coinbt.results", "coinbt.backend", "coinbt.executor"),
    ("coinbt.actors",),
    ("coinbt.runtime", "coinbt.rerun", "coinbt.demo", "coinbt._connection"),
    ("coinbt.api", "coinbt.dashboard"),
    ("coinbt.server", "coinbt.cli", "coinbt.__main__"),
)
"""Lowest rung first: events <- engine <- stores <- projections <- actors <- runtime <- api/cli."""


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
    assert _rung("coinbt.store.sqlite") < _rung("coinbt.projections.sqlite") < _rung("coinbt.api")
    with pytest.raises(AssertionError, match="on no rung"):
        _rung("coinbt.newthing")
