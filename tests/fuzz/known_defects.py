"""Defects in admitd that these fuzz tests found and that are not yet fixed: none open.

A new find is pinned by an `xfail(strict=True)` test with a concrete input (in the target's
test module) and listed here as a KnownDefect, which the property tests and the atheris
targets (fuzz/harness.py) use to tolerate exactly that defect and nothing else. Fixing it
turns the pinned test into an XPASS failure: then delete the marker, the tolerance and the
entry. The nine found so far are fixed (docs/fuzzing.md, "Defects found").
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownDefect"]


@dataclass(frozen=True, slots=True)
class KnownDefect:
    name: str
    exception: type[BaseException]
    message: str  # a substring of str(exception)

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.exception) and self.message in str(exc)

    @property
    def reason(self) -> str:
        return f"known defect {self.name} (tests/fuzz/known_defects.py)"
