"""CEL conditions of a route, compiled at load (the core sees them as `Condition`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

__all__ = ["CONDITION_VARIABLES", "CelCondition", "compile_condition"]

# The variables a condition may use (documented in README "Route policies").
CONDITION_VARIABLES = frozenset({"request", "principal", "session", "risk"})
_DETAIL_LIMIT = 300
_COMPREHENSION_VARIABLE = re.compile(
    r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,"
)


@dataclass(frozen=True, slots=True)
class CelCondition:
    """One CEL expression that must evaluate to true for the route to admit
    (implements `admitd.core.route.Condition`)."""

    source: str
    program: Any  # cel.Program (untyped extension)

    def holds(self, activation: Mapping[str, object]) -> bool:
        """False when the expression is false, not a bool, or fails (fail closed)."""
        return self.failure(activation) is None

    def failure(self, activation: Mapping[str, object]) -> str | None:
        """None when the condition holds, else why not, for the decision log only.

        Any evaluation error (division by zero, overflow, missing key, type error...)
        is a false condition, never a crash. A non-bool result is named by its type
        only (the value may be a header or token); an error keeps the extension's
        own text, cut short.
        """
        try:
            result = self.program.execute(dict(activation))
        except Exception as exc:  # the extension raises many types (ZeroDivisionError, ...)
            return f"error: {type(exc).__name__}: {exc}"[:_DETAIL_LIMIT]
        if result is True:
            return None
        if result is False:
            return "false"
        return f"evaluated to {_cel_type(result)}, not a bool"


def _cel_type(value: object) -> str:
    names = {str: "a string", int: "an int", float: "a double", bytes: "bytes", list: "a list"}
    if value is None:
        return "null"
    return names.get(type(value), "a map" if isinstance(value, Mapping) else type(value).__name__)


def compile_condition(source: str) -> CelCondition:
    """Raises ValueError naming the problem (syntax, or a variable that does not exist)."""
    program = cel.compile(source)
    bound = set(_COMPREHENSION_VARIABLE.findall(source))  # e.g. `r` in roles.exists(r, ...)
    unknown = set(program.variables()) - CONDITION_VARIABLES - bound
    if unknown:
        raise ValueError(
            f"unknown variable {sorted(unknown)[0]!r}; use {', '.join(sorted(CONDITION_VARIABLES))}"
        )
    return CelCondition(source, program)
