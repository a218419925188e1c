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
