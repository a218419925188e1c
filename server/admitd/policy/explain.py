"""`admitd policy explain`: the trace `decide()` itself produced for a request, and its outcome."""

from __future__ import annotations

from admitd.core.decision import Decision
from admitd.core.mfa_rules import MfaRules
from admitd.core.route import PolicySet
from admitd.policy.cases import PolicyCase
from admitd.policy.testing import run_case

__all__ = ["explain"]


def explain(case: PolicyCase, policy: PolicySet, rules: MfaRules) -> list[str]:
    """One line per phase the decision went through (nothing is evaluated twice)."""
    ctx = case.ctx
    decision = run_case(case, policy, rules, explain=True).decision
    lines = [f"request: {ctx.method} {ctx.host}{ctx.path}", f"policy version: {policy.version}"]
    for step in decision.trace:
        indent = "" if step.phase == "route" else "  "
        lines.append(f"{indent}{step.phase}: {step.outcome}")
    return [*lines, *_outcome(decision)]


def _outcome(decision: Decision) -> list[str]:
    verdict = "ALLOW" if decision.allowed else "DENY"
    lines = [f"decision: {verdict} {decision.status} ({decision.reason.value})"]
    if decision.message:
        lines.append(f"  why: {decision.message}")
    if decision.shadow_reason is not None:
        lines.append(f"  shadow: would have denied ({decision.shadow_reason.value})")
    if decision.log_detail:
        lines.append(f"  detail: {decision.log_detail}")
    lines += [f"  upstream {name}: {value}" for name, value in decision.upstream_headers]
    return lines
