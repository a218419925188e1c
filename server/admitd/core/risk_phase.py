"""The device-risk phase: critical denies, recovery refuses above medium, high steps up.

Risk is judged only for a live session (telemetry belongs to an authentication of
a user); certificate-only routes have no user to step up.
"""

from __future__ import annotations

from admitd.core.decision import Reason
from admitd.policy.model import Route
from admitd.risk.model import RiskAssessment, RiskLevel
from admitd.sessions.config import SessionsConfig
from admitd.sessions.model import Session

__all__ = ["risk_denial", "risk_step_up_max_age"]


def risk_denial(
    route: Route | None, risk: RiskAssessment | None, *, unavailable: bool = False
) -> Reason | None:
    if unavailable:
        return Reason.RISK_UNAVAILABLE  # fail closed: the live session's risk is unknown
    if risk is None:
        return None
    if risk.level.at_least(route.risk_deny_at if route else RiskLevel.CRITICAL):
        return Reason.RISK_CRITICAL
    if route is not None and route.recovery and risk.level.above(RiskLevel.MEDIUM):
        # Automated account recovery is where a hijacker would go next.
        return Reason.RECOVERY_BLOCKED_BY_RISK
    return None


def risk_step_up_max_age(
    route: Route | None,
    risk: RiskAssessment | None,
    session: Session | None,
    now: float,
    rules: SessionsConfig,
) -> int | None:
    """The MFA max age a high risk level demands, when the session's MFA is older; else None."""
    step_up_at = route.risk_step_up_at if route else RiskLevel.HIGH
    if risk is None or session is None or not risk.level.at_least(step_up_at):
        return None
    age = session.mfa_age(now)
    if age is not None and age <= rules.high_risk_mfa_max_age:
        return None
    return rules.high_risk_mfa_max_age
