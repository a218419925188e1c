"""The decision: pure, synchronous, deterministic. No I/O, no protobuf, no clock."""

from __future__ import annotations

from dataclasses import replace

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason, reason_from_certificate_problem
from admitd.core.facts import Facts
from admitd.core.mfa_rules import MfaRules
from admitd.core.outcomes import (
    allow,
    deny,
    step_up,
    with_risk,
    with_step_up_url,
    without_session_credentials,
)
from admitd.core.policy_phase import Refusal, policy_denial
from admitd.core.risk_phase import risk_denial, risk_step_up_max_age
from admitd.core.route import PolicySet, Route
from admitd.core.session_phase import session_verdict

__all__ = ["decide", "with_step_up_url"]

DEFAULT_RULES = MfaRules()
# Servlet containers cut `;params` off path segments, so the upstream could resolve
# another path than the one matched; a route opts in with `allow_path_parameters`.
_PARAMETERS = "';' path parameters are not accepted on this route"


def decide(
    ctx: RequestContext,
    policy: PolicySet,
    facts: Facts,
    rules: MfaRules = DEFAULT_RULES,
    route: Route | None = None,
) -> Decision:
    """Allow or deny one request, given the policy and the facts gathered about it.

    Phases, in order: request sanity, HTTPS, route (and whether it admits `;` in the
    path), then the route's own phases (certificate, session and MFA, device risk,
    roles and conditions). A shadow route runs them all but only records what it
    would have denied. `route`, when given, is the route already chosen (e.g. by
    Envoy's context_extensions). An admitted request loses admitd's own session
    cookie and bearer token on its way to the upstream.
    """
    if ctx.malformed:
        return deny(ctx, policy, Reason.REQUEST_MALFORMED, detail="; ".join(ctx.malformed))
    if policy.require_https and _forwarded_proto(ctx) != "https":
        return deny(ctx, policy, Reason.HTTPS_REQUIRED)
    route = route or policy.route_for(ctx)
    if route is None and policy.unmatched == "deny":
        return deny(ctx, policy, Reason.NO_MATCHING_ROUTE)
    if ctx.path_has_parameters and not (route is not None and route.allow_path_parameters):
        return deny(ctx, policy, Reason.REQUEST_MALFORMED, detail=_PARAMETERS, route=route)
    live = facts.user.user
    if route is not None and live is not None:
        # The session's organisation variant, chosen before `shadow` is read (it may set it).
        route = route.for_organisation(live.organisation)
    decision = _route_decision(ctx, policy, route, facts, rules)
    if route is None or not route.shadow or decision.allowed:
        return without_session_credentials(decision, ctx, facts)
    # Shadow: admit, but keep what would have happened for the log and the metrics.
    admitted = allow(ctx, policy, route, decision.identity, Reason.ALLOWED, user=decision.user)
    admitted = without_session_credentials(admitted, ctx, facts)
    return replace(
        with_risk(admitted, decision.risk),
        shadow_reason=decision.reason,
        log_detail=decision.log_detail,
    )


def _route_decision(
    ctx: RequestContext, policy: PolicySet, route: Route | None, facts: Facts, rules: MfaRules
) -> Decision:
    certificate = facts.certificate
    if route is not None and route.public:
        return allow(ctx, policy, route, certificate.identity, Reason.PUBLIC_ROUTE)
    identity = certificate.identity
    if identity is None:
        assert certificate.problem is not None  # one of identity/problem is always set
        reason = reason_from_certificate_problem(certificate.problem)
        return deny(ctx, policy, reason, detail=certificate.detail, route=route)
    if route is not None and not route.identities.admits(identity):
        return deny(ctx, policy, Reason.IDENTITY_NOT_ALLOWED, route=route, identity=identity)
    verdict = session_verdict(route, facts, rules)
    needs_step_up = verdict.reason is Reason.MFA_STEP_UP_REQUIRED
    if verdict.reason is not None and not needs_step_up:
        denial = deny(ctx, policy, verdict.reason, route=route, identity=identity)
        return replace(denial, user=verdict.user, mfa_checked=verdict.mfa_checked)
    risk = facts.risk if verdict.user is not None else None
    unavailable = facts.risk_unavailable and verdict.user is not None
    refused = risk_denial(route, risk, unavailable=unavailable)
    refusal = (
        Refusal(refused)
        if refused is not None
        else policy_denial(
            route, ctx, identity=identity, user=verdict.user, risk=risk, now=facts.now
        )
    )
    if refusal is not None:
        denial = deny(ctx, policy, refusal.reason, route=route, identity=identity)
        denial = replace(denial, user=verdict.user, log_detail=refusal.detail)
        return with_risk(denial, risk)
    risk_age = risk_step_up_max_age(route, risk, verdict.user, facts.now, rules)
    if needs_step_up or risk_age is not None:
        ages = [a for a in (verdict.max_age if needs_step_up else None, risk_age) if a is not None]
        demanded = replace(verdict, max_age=min(ages), mfa_checked=True)
        return with_risk(step_up(policy, route, identity, demanded), risk)
    admitted = allow(
        ctx,
        policy,
        route,
        identity,
        Reason.ALLOWED,
        user=verdict.user,
        mfa_checked=verdict.mfa_checked,
    )
    return with_risk(admitted, risk)


def _forwarded_proto(ctx: RequestContext) -> str:
    # Envoy overwrites x-forwarded-proto at the edge (use_remote_address), so a
    # client cannot forge it; fall back to the scheme Envoy reports.
    return (ctx.header("x-forwarded-proto") or ctx.scheme).lower()
