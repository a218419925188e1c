"""The route's own rules: required roles, then CEL conditions over a documented activation."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.certs.identity import ClientIdentity
from admitd.core.context import RequestContext
from admitd.core.decision import Reason
from admitd.policy.model import Route
from admitd.risk.model import RiskAssessment
from admitd.sessions.model import Session

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
    session: Session | None,
    risk: RiskAssessment | None,
    now: float,
) -> Refusal | None:
    if route is None:
        return None
    if route.roles and (session is None or not route.roles & session.roles):
        return Refusal(Reason.ROLE_REQUIRED)
    if route.conditions:
        activation = condition_activation(
            ctx, identity=identity, session=session, risk=risk, now=now
        )
        for number, condition in enumerate(route.conditions, 1):
            failure = condition.failure(activation)
            if failure is not None:  # the first that fails decides; the rest need not run
                return Refusal(Reason.CONDITION_FAILED, f"condition {number}: {failure}")
    return None


def condition_activation(
    ctx: RequestContext,
    *,
    identity: ClientIdentity | None,
    session: Session | None,
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
        "session": _session(session, now),
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


def _session(session: Session | None, now: float) -> dict[str, object]:
    if session is None:
        return {}
    age = session.mfa_age(now)
    return {
        "user": session.user_id,
        "organisation": session.organisation,
        "roles": sorted(session.roles),
        "device_id": session.device_id,
        "mfa_age": -1 if age is None else int(age),
        "mfa_method": session.mfa_method.value if session.mfa_method else "",
    }
