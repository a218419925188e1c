"""The decision: pure, synchronous, deterministic. No I/O, no protobuf, no clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason, Step, reason_from_certificate_problem
from admitd.core.facts import Facts
from admitd.core.identity import ClientIdentity, User
from admitd.core.mfa_rules import MfaRules
from admitd.core.outcomes import allow, deny, step_up, with_step_up_url
from admitd.core.policy_phase import Refusal, policy_denial
from admitd.core.risk import RiskAssessment
from admitd.core.risk_phase import risk_denial, risk_step_up_max_age
from admitd.core.route import PolicySet, Route
from admitd.core.session_phase import SessionVerdict, session_verdict

__all__ = ["decide", "with_step_up_url"]

DEFAULT_RULES = MfaRules()
# Servlet containers cut `;params` off path segments, so the upstream could resolve
# another path than the one matched; a route opts in with `allow_path_parameters`.
_PARAMETERS = "';' path parameters are not accepted on this route"
_ADMITTED = (Reason.ALLOWED, Reason.PUBLIC_ROUTE)


class _Trace:
    """The steps of one decision, kept only when asked for (`explain`): a Check pays nothing."""

    __slots__ = ("steps",)

    def __init__(self, keep: bool) -> None:
        self.steps: list[Step] | None = [] if keep else None

    def add(self, phase: str, outcome: str | Callable[[], str]) -> None:
        if self.steps is not None:
            self.steps.append(Step(phase, outcome if isinstance(outcome, str) else outcome()))

    def done(self) -> tuple[Step, ...]:
        return tuple(self.steps) if self.steps is not None else ()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the route's phases concluded; `decide()` turns it into the one Decision."""

    reason: Reason
    identity: ClientIdentity | None = None
    user: User | None = None
    risk: RiskAssessment | None = None
    mfa_checked: bool = False
    max_age: int = 0  # for a step-up
    detail: str = ""  # for the client (a certificate problem)
    log_detail: str = ""  # for the decision log only


def decide(
    ctx: RequestContext,
    policy: PolicySet,
    facts: Facts,
    rules: MfaRules = DEFAULT_RULES,
    route: Route | None = None,
    *,
    explain: bool = False,
) -> Decision:
    """Allow or deny one request, given the policy and the facts gathered about it.

    Phases, in order: request sanity, HTTPS, route (and whether it admits `;` in the
    path), the organisation's variant of the route, then the route's own phases
    (certificate, session and MFA, device risk, roles and conditions). A shadow route
    runs them all but only records what it would have denied. `route`, when given, is
    the route already chosen (e.g. by Envoy's context_extensions). With `explain`, each
    phase adds a `Step` to the decision's trace. An admitted request loses the identity
    source's own cookie and bearer token on its way to the upstream.
    """
    trace = _Trace(explain)
    if ctx.malformed:
        detail = "; ".join(ctx.malformed)
        trace.add("request", f"malformed: {detail}")
        return deny(ctx, policy, Reason.REQUEST_MALFORMED, detail=detail, trace=trace.done())
    proto = _forwarded_proto(ctx)
    if policy.require_https and proto != "https":
        trace.add("https", f"required; the request came over {proto or '(unknown)'}")
        return deny(ctx, policy, Reason.HTTPS_REQUIRED, trace=trace.done())
    route = route or policy.route_for(ctx)
    trace.add("route", lambda: _route_note(policy, route))
    if route is None and policy.unmatched == "deny":
        return deny(ctx, policy, Reason.NO_MATCHING_ROUTE, trace=trace.done())
    if ctx.path_has_parameters and not (route is not None and route.allow_path_parameters):
        trace.add("path", _PARAMETERS)
        return deny(
            ctx, policy, Reason.REQUEST_MALFORMED, detail=_PARAMETERS, route=route,
            trace=trace.done(),
        )  # fmt: skip
    route = _variant(route, facts, trace)
    outcome = _route_outcome(ctx, route, facts, rules, trace)
    return _decision(ctx, policy, route, facts, outcome, trace=trace.done())


def _variant(route: Route | None, facts: Facts, trace: _Trace) -> Route | None:
    """The live user's organisation variant, chosen before `shadow` is read (it may set it)."""
    live = facts.user.user
    if route is None or live is None or not route.per_organisation:
        return route
    variant = route.for_organisation(live.organisation)
    applied = "applies" if variant is not route else "none for this organisation"
    trace.add("organisation override", lambda: f"{live.organisation} ({applied})")
    return variant


def _route_outcome(
    ctx: RequestContext, route: Route | None, facts: Facts, rules: MfaRules, trace: _Trace
) -> _Outcome:
    certificate = facts.certificate
    if route is not None and route.public:
        trace.add("public", "yes (no certificate, session or MFA needed)")
        return _Outcome(Reason.PUBLIC_ROUTE, certificate.identity)
    identity = certificate.identity
    if identity is None:
        assert certificate.problem is not None  # one of identity/problem is always set
        trace.add("certificate", lambda: f"{certificate.problem}: {certificate.detail}")
        reason = reason_from_certificate_problem(certificate.problem)
        return _Outcome(reason, detail=certificate.detail)
    trace.add("certificate", identity.principal)
    if route is not None and not route.identities.admits(identity):
        trace.add("identity allowed", "NO")
        return _Outcome(Reason.IDENTITY_NOT_ALLOWED, identity)
    verdict = session_verdict(route, facts, rules)
    trace.add("session", lambda: _session_note(route, facts, verdict))
    needs_step_up = verdict.reason is Reason.MFA_STEP_UP_REQUIRED
    if verdict.reason is not None and not needs_step_up:
        return _Outcome(
            verdict.reason, identity, verdict.user, mfa_checked=verdict.mfa_checked,
            log_detail=facts.user.detail,
        )  # fmt: skip
    return _risk_and_rules(
        ctx, route, facts, rules, trace=trace, identity=identity, verdict=verdict
    )


def _risk_and_rules(
    ctx: RequestContext,
    route: Route | None,
    facts: Facts,
    rules: MfaRules,
    *,
    trace: _Trace,
    identity: ClientIdentity,
    verdict: SessionVerdict,
) -> _Outcome:
    user = verdict.user
    risk = facts.risk if user is not None else None
    if risk is not None:
        trace.add("risk", lambda: _risk_note(route, risk))
    refused = risk_denial(route, risk, unavailable=facts.risk_unavailable and user is not None)
    refusal = (
        Refusal(refused)
        if refused is not None
        else policy_denial(route, ctx, identity=identity, user=user, risk=risk, now=facts.now)
    )
    if refusal is not None:
        trace.add("refused", lambda: _refusal_note(refusal))
        return _Outcome(refusal.reason, identity, user, risk, log_detail=refusal.detail)
    if route is not None and (route.roles or route.conditions):
        trace.add("roles and conditions", "hold")
    risk_age = risk_step_up_max_age(route, risk, user, facts.now, rules)
    needs_step_up = verdict.reason is Reason.MFA_STEP_UP_REQUIRED
    if needs_step_up or risk_age is not None:
        ages = [a for a in (verdict.max_age if needs_step_up else None, risk_age) if a is not None]
        max_age = min(ages) if ages else 0
        trace.add("step up", lambda: f"MFA within {max_age}s")
        return _Outcome(Reason.MFA_STEP_UP_REQUIRED, identity, user, risk, True, max_age)
    return _Outcome(Reason.ALLOWED, identity, user, risk, verdict.mfa_checked)


def _decision(
    ctx: RequestContext,
    policy: PolicySet,
    route: Route | None,
    facts: Facts,
    outcome: _Outcome,
    *,
    trace: tuple[Step, ...],
) -> Decision:
    """The one Decision for an outcome; a shadow route admits what it would have denied."""
    if outcome.reason in _ADMITTED:
        return allow(
            ctx, policy, route, outcome.identity, outcome.reason, facts=facts,
            user=outcome.user, mfa_checked=outcome.mfa_checked, risk=outcome.risk, trace=trace,
        )  # fmt: skip
    if route is not None and route.shadow:
        return allow(
            ctx, policy, route, outcome.identity, Reason.ALLOWED, facts=facts,
            user=outcome.user, risk=outcome.risk, shadow_reason=outcome.reason,
            log_detail=outcome.log_detail, trace=_shadowed(trace),
        )  # fmt: skip
    if outcome.reason is Reason.MFA_STEP_UP_REQUIRED:
        return step_up(
            policy, route, outcome.identity, outcome.user, outcome.max_age,
            risk=outcome.risk, trace=trace,
        )  # fmt: skip
    return deny(
        ctx, policy, outcome.reason, detail=outcome.detail, route=route,
        identity=outcome.identity, user=outcome.user, mfa_checked=outcome.mfa_checked,
        risk=outcome.risk, log_detail=outcome.log_detail, trace=trace,
    )  # fmt: skip


def _refusal_note(refusal: Refusal) -> str:
    return f"{refusal.reason.value}: {refusal.detail}" if refusal.detail else refusal.reason.value


def _shadowed(trace: tuple[Step, ...]) -> tuple[Step, ...]:
    return (*trace, Step("shadow", "admitted anyway")) if trace else trace


def _route_note(policy: PolicySet, route: Route | None) -> str:
    if route is None:
        return f"none matched (unmatched requests: {policy.unmatched.value})"
    return f"{route.name} ({route.source})" if route.source else route.name


def _session_note(route: Route | None, facts: Facts, verdict: SessionVerdict) -> str:
    wanted = route.session.value if route is not None else "none"
    note = f"{wanted}; found: {facts.user.state.value}"
    if verdict.max_age is not None:
        age = verdict.user.mfa_age(facts.now) if verdict.user else None
        shown = "never" if age is None else str(int(age))
        note += f"; MFA max age: {verdict.max_age}s; session MFA age: {shown}"
    if route is not None and route.roles:
        roles = ", ".join(sorted(verdict.user.roles)) if verdict.user else "(no session)"
        note += f"; roles: any of {', '.join(sorted(route.roles))}; session has {roles}"
    return note


def _risk_note(route: Route | None, risk: RiskAssessment) -> str:
    note = f"{risk.level.value} ({risk.signal_names or 'no signals'})"
    if route is not None:
        note += f"; step up at {route.risk_step_up_at.value}, deny at {route.risk_deny_at.value}"
    return note


def _forwarded_proto(ctx: RequestContext) -> str:
    # Envoy overwrites x-forwarded-proto at the edge (use_remote_address), so a
    # client cannot forge it; fall back to the scheme Envoy reports.
    return (ctx.header("x-forwarded-proto") or ctx.scheme).lower()
