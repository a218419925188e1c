"""Per-route rules beyond matching: CEL conditions and header matches, compiled at load."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel

__all__ = ["CONDITION_VARIABLES", "Condition", "HeaderMatch", "compile_condition"]

# The variables a condition may use (documented in README "Route policies").
CONDITION_VARIABLES = frozenset({"request", "principal", "session", "risk"})
_COMPREHENSION_VARIABLE = re.compile(
    r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,"
)


@dataclass(frozen=True, slots=True)
class Condition:
    """One CEL expression that must evaluate to true for the route to admit."""

    source: str
    program: Any  # cel.Program (untyped extension)

    def holds(self, activation: Mapping[str, object]) -> bool:
        """False when the expression is false, not a bool, or fails (fail closed)."""
        try:
            return self.program.execute(dict(activation)) is True
        except (KeyError, ValueError, TypeError, RuntimeError):
            return False


def compile_condition(source: str) -> Condition:
    """Raises ValueError naming the problem (syntax, or a variable that does not exist)."""
    program = cel.compile(source)
    bound = set(_COMPREHENSION_VARIABLE.findall(source))  # e.g. `r` in roles.exists(r, ...)
    unknown = set(program.variables()) - CONDITION_VARIABLES - bound
    if unknown:
        raise ValueError(
            f"unknown variable {sorted(unknown)[0]!r}; use {', '.join(sorted(CONDITION_VARIABLES))}"
        )
    return Condition(source, program)


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A request header that must be present, equal a value, or match a regex (full match)."""

    name: str
    exact: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, headers: Mapping[str, str]) -> bool:
        value = headers.get(self.name)
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex is None or self.regex.fullmatch(value) is not None
