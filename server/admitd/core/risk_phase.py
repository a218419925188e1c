"""The device-risk phase: critical denies, recovery refuses above medium, high steps up.

Risk is judged only for a live session (telemetry belongs to an authentication of
a user); certificate-only routes have no user to step up.
"""

from __future__ import annotations

from admitd.core.decision import Decision, Reason
from admitd.core.identity import User
from admitd.core.mfa_rules import MfaRules, is_fresh
from admitd.core.risk import RiskAssessment, RiskLevel
from admitd.core.route import Route

__all__ = ["moves_risk_history", "risk_denial", "risk_step_up_max_age"]


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
    session: User | None,
    now: float,
    rules: MfaRules,
) -> int | None:
    """The MFA max age a high risk level demands, when the session's MFA is older; else None."""
    step_up_at = route.risk_step_up_at if route else RiskLevel.HIGH
    if risk is None or session is None or not risk.level.at_least(step_up_at):
        return None
    if is_fresh(session.mfa_age(now), rules.high_risk_mfa_max_age):
        return None
    return rules.high_risk_mfa_max_age


def moves_risk_history(decision: Decision, user: User | None, now: float, rules: MfaRules) -> bool:
    """Whether an admitted Check vouches for its device and place (they become known).

    Only when this route judged the risk (`decision.risk`), and the admission holds by the
    default thresholds too: below `high`, or `high` with MFA within
    `high_risk_mfa_max_age`; never `critical`. So a route that ignores risk, or one with
    laxer thresholds (a status page), cannot vouch for a device on every other route.
    """
    risk = decision.risk
    if not decision.allowed or decision.shadow_reason is not None or risk is None:
        return False
    if risk.level.at_least(RiskLevel.CRITICAL):
        return False
    if not risk.level.at_least(RiskLevel.HIGH):
        return True
    return user is not None and is_fresh(user.mfa_age(now), rules.high_risk_mfa_max_age)
