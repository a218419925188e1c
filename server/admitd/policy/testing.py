"""Run policy test cases through the real decision core, like `opa test`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from admitd.core.decide import decide
from admitd.core.decision import Decision
from admitd.core.mfa_rules import MfaRules
from admitd.core.route import PolicySet
from admitd.policy.cases import PolicyCase, cases_from_document
from admitd.yamlsource import load_yaml

__all__ = ["CaseResult", "load_cases", "run_case"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    decision: Decision
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences


def load_cases(directory: Path) -> list[PolicyCase]:
    files = sorted([*directory.glob("*.test.yaml"), *directory.glob("*.test.yml")])
    return [case for path in files for case in cases_from_document(load_yaml(path))]


def run_case(
    case: PolicyCase, policy: PolicySet, rules: MfaRules, *, explain: bool = False
) -> CaseResult:
    decision = decide(case.ctx, policy, case.facts, rules, explain=explain)
    return CaseResult(case, decision, tuple(_differences(case, decision)))


def _differences(case: PolicyCase, decision: Decision) -> list[str]:
    expect, found = case.expect, []
    if expect.status is not None and decision.status != expect.status:
        found.append(f"status: expected {expect.status}, got {decision.status}")
    if expect.reason is not None and decision.reason.value != expect.reason:
        found.append(f"reason: expected {expect.reason}, got {decision.reason.value}")
    found += _header_differences(
        "upstream header", expect.upstream_headers, dict(decision.upstream_headers)
    )
    client = dict(decision.client_headers + decision.client_ok_headers)
    found += _header_differences("client header", expect.client_headers, client)
    return found


def _header_differences(kind: str, expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    return [
        f"{kind} {name}: expected {value!r}, got {actual.get(name)!r}"
        for name, value in expected.items()
        if actual.get(name) != value
    ]
