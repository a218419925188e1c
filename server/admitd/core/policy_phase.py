"""The route's own rules: required roles and scopes, then CEL conditions over an activation."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.core.context import RequestContext
from admitd.core.decision import Reason
from admitd.core.identity import ClientIdentity, User
from admitd.core.risk import RiskAssessment
from admitd.core.route import Route

__all__ = ["Refusal", "condition_activation", "policy_denial"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a route's own rules refuse; `detail` goes to the decision log, never the client."""

    reason: Reason
    detail: str = ""


def policy_denial(
    route: Route | None,
    ctx: RequestContext,
    *,
    identity: ClientIdentity | None,
    user: User | None,
    risk: RiskAssessment | None,
    now: float,
) -> Refusal | None:
    if route is None:
        return None
    if route.roles and (user is None or not route.roles & user.roles):
        return Refusal(Reason.ROLE_REQUIRED)
    if route.scopes and (user is None or not route.scopes <= user.scopes):
        # All listed scopes, as Envoy's jwt_authn `requires_all`; a session grants none.
        missing = route.scopes - (user.scopes if user is not None else frozenset())
        return Refusal(Reason.SCOPE_REQUIRED, f"missing scopes: {' '.join(sorted(missing))}")
    if route.conditions:
        activation = condition_activation(ctx, identity=identity, user=user, risk=risk, now=now)
        for number, condition in enumerate(route.conditions, 1):
            failure = condition.failure(activation)
            if failure is not None:  # the first that fails decides; the rest need not run
                return Refusal(Reason.CONDITION_FAILED, f"condition {number}: {failure}")
    return None


def condition_activation(
    ctx: RequestContext,
    *,
    identity: ClientIdentity | None,
    user: User | None,
    risk: RiskAssessment | None,
    now: float,
) -> dict[str, object]:
    """The variables a condition sees (README "Route policies" documents each field)."""
    return {
        "request": {
            "method": ctx.method,
            "host": ctx.host_name,  # normalised, as routes match it: no port, no trailing dot
            "path": ctx.path_only,
            "headers": dict(ctx.headers),
            "source_address": ctx.source_address,
        },
        "principal": _principal(identity),
        "session": _session(user, now),
        "risk": {"level": risk.level.value, "signals": list(risk.signals), "score": risk.score}
        if risk
        else {},
    }


def _principal(identity: ClientIdentity | None) -> dict[str, object]:
    if identity is None:
        return {}
    return {
        "name": identity.principal,
        "uris": list(identity.uris),
        "dns": list(identity.dns_names),
        "subject": identity.subject,
        "sha256": identity.fingerprint_sha256,
    }


def _session(user: User | None, now: float) -> dict[str, object]:
    # Called `session` in CEL (documented, and stable for policy authors).
    if user is None:
        return {}
    age = user.mfa_age(now)
    return {
        "user": user.user_id,
        "organisation": user.organisation,
        "roles": sorted(user.roles),
        "device_id": user.device_id,
        "mfa_age": -1 if age is None else int(age),
        "mfa_method": user.mfa_method.value if user.mfa_method else "",
    }
