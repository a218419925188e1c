"""The import contracts (pyproject.toml, run by `make lint`) stay complete as modules are added."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import admitd

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    found: list[dict[str, object]] = config["contracts"]
    return found


def test_the_core_contract_forbids_every_other_admitd_module() -> None:
    (leaf,) = [c for c in contracts() if c.get("source_modules") == ["admitd.core"]]
    forbidden = {m for m in leaf["forbidden_modules"] if m.startswith("admitd.")}  # type: ignore[attr-defined]
    modules = {f"admitd.{m.name}" for m in pkgutil.iter_modules(admitd.__path__)}
    assert forbidden == modules - {"admitd.core", "admitd.__main__"}


def test_the_core_imports_only_the_standard_library_and_itself() -> None:
    """The contract's deny-list names known packages; this catches any other one."""
    import sys

    import grimp

    graph = grimp.build_graph("admitd", include_external_packages=True)
    core = {m for m in graph.modules if m == "admitd.core" or m.startswith("admitd.core.")}
    imported = {i for m in core for i in graph.find_modules_directly_imported_by(m)}
    outside = {
        name for name in imported - core if name.split(".")[0] not in sys.stdlib_module_names
    }
    assert outside == set()
