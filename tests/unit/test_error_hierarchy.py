"""`admitd.errors` draws the whole hierarchy: every admitd exception class is in its docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import admitd
import admitd.errors

PACKAGE = Path(admitd.__file__).parent


def admitd_error_classes() -> dict[str, str]:
    """Class name -> module file of every class deriving (by name) from AdmitdError.

    Read from the source, not imported, so a module that fails to import cannot hide one."""
    bases: dict[str, tuple[set[str], str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "_proto" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                names = {_base_name(b) for b in node.bases}
                bases[node.name] = (names, str(path.relative_to(PACKAGE)))
    found = {"AdmitdError": "errors.py"}
    while True:
        more = {
            name: where
            for name, (parents, where) in bases.items()
            if name not in found and parents & found.keys()
        }
        if not more:
            return found
        found.update(more)


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def test_the_scan_finds_the_known_branches() -> None:
    assert {"ConfigError", "StoreRefused", "TamperedEnvelope", "SameApprover"} <= set(
        admitd_error_classes()
    )


def drawn_in_docstring() -> set[str]:
    """The class names on the tree in `admitd.errors`' docstring (root and branches)."""
    doc = admitd.errors.__doc__ or ""
    names = {line.split("── ", 1)[1].split()[0] for line in doc.splitlines() if "── " in line}
    return names | {"AdmitdError"} if names else set()


def test_every_admitd_exception_is_drawn_in_the_errors_docstring() -> None:
    drawn = drawn_in_docstring()
    missing = sorted(
        f"{n} ({where})" for n, where in admitd_error_classes().items() if n not in drawn
    )
    assert not missing, f"draw these in admitd.errors' docstring: {missing}"


def test_the_docstring_draws_no_class_that_does_not_exist() -> None:
    assert drawn_in_docstring() - admitd_error_classes().keys() == set()
