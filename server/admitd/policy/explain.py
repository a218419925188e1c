"""`admitd policy explain`: which route matched, every requirement checked, and the outcome."""

from __future__ import annotations

from admitd.core.decision import Decision
from admitd.core.mfa_rules import MfaRules
from admitd.core.policy_phase import condition_activation
from admitd.core.route import PolicySet, Route
from admitd.core.session_phase import session_verdict
from admitd.policy.cases import PolicyCase
from admitd.policy.testing import run_case

__all__ = ["explain"]


def explain(case: PolicyCase, policy: PolicySet, rules: MfaRules) -> list[str]:
    ctx = case.ctx
    route = policy.route_for(ctx)
    lines = [f"request: {ctx.method} {ctx.host}{ctx.path}", f"policy version: {policy.version}"]
    if route is None:
        lines.append(f"route: none matched (unmatched requests: {policy.unmatched.value})")
    else:
        lines.append(f"route: {route.name} ({route.source})")
        route = _variant(route, case, lines)
        lines += _requirements(route, case, rules)
    decision = run_case(case, policy, rules).decision
    return [*lines, *_outcome(decision)]


def _variant(route: Route, case: PolicyCase, lines: list[str]) -> Route:
    """The route as the case's session sees it: its organisation's override, as decide()."""
    live = case.facts.user.user
    if live is None or not route.per_organisation:
        return route
    variant = route.for_organisation(live.organisation)
    applied = "applies" if variant is not route else "none for this organisation"
    lines.append(f"  organisation override: {live.organisation} ({applied})")
    return variant


def _requirements(route: Route, case: PolicyCase, rules: MfaRules) -> list[str]:
    facts, identity = case.facts, case.facts.certificate.identity
    if route.public:
        return ["  public: yes (no certificate, session or MFA needed)"]
    lines = [f"  certificate: {identity.principal if identity else facts.certificate.problem}"]
    if identity is not None:
        lines.append(f"  identity allowed: {'yes' if route.identities.admits(identity) else 'NO'}")
    verdict = session_verdict(route, facts, rules)
    lines.append(f"  session: {route.session.value}; found: {facts.user.state.value}")
    if verdict.max_age is not None:
        age = verdict.user.mfa_age(facts.now) if verdict.user else None
        shown = "never" if age is None else str(int(age))
        lines.append(f"  MFA max age: {verdict.max_age}s; session MFA age: {shown}")
    if route.roles:
        roles = ", ".join(sorted(verdict.user.roles)) if verdict.user else "(no session)"
        lines.append(f"  roles: any of {', '.join(sorted(route.roles))}; session has {roles}")
    if facts.risk is not None:
        lines.append(
            f"  risk: {facts.risk.level.value} ({facts.risk.signal_names or 'no signals'});"
            f" step up at {route.risk_step_up_at.value}, deny at {route.risk_deny_at.value}"
        )
    activation = (
        condition_activation(
            ctx=case.ctx, identity=identity, user=verdict.user, risk=facts.risk, now=facts.now
        )
        if route.conditions
        else {}
    )
    lines += [
        f"  condition {c.source!r}: {c.failure(activation) or 'true'}" for c in route.conditions
    ]
    if route.shadow:
        lines.append("  shadow: yes (denials are logged, not enforced)")
    return lines


def _outcome(decision: Decision) -> list[str]:
    verdict = "ALLOW" if decision.allowed else "DENY"
    lines = [f"decision: {verdict} {decision.status} ({decision.reason.value})"]
    if decision.message:
        lines.append(f"  why: {decision.message}")
    if decision.shadow_reason is not None:
        lines.append(f"  shadow: would have denied ({decision.shadow_reason.value})")
    lines += [f"  upstream {name}: {value}" for name, value in decision.upstream_headers]
    return lines
