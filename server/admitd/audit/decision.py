"""Audit entries from Check decisions: every denial, every step-up, every high or critical
risk evaluation; ordinary allows give none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from admitd.audit.entry import AuditEntry, AuditEvent

if TYPE_CHECKING:  # the core is not imported at run time: `admitd audit` does not need it
    from admitd.core.decision import Decision

__all__ = ["audit_entry_from_decision"]

_STEP_UP = "mfa_step_up_required"  # Reason.MFA_STEP_UP_REQUIRED (a StrEnum compares equal)
_AUDITED_RISK = {"high": AuditEvent.RISK_HIGH, "critical": AuditEvent.RISK_CRITICAL}


def audit_entry_from_decision(
    decision: Decision, *, instance: str, source_ip: str, device_id: str, now: float
) -> AuditEntry | None:
    """The entry to append after a Check, or None when the decision needs no audit.

    A step-up (428 or a browser 302) is also a denial; it gets its own event type
    so dashboards can tell friction from refusals. `device_id` falls back to the
    session's device when the caller has none.
    """
    event = _event(decision)
    if event is None:
        return None
    session, identity, risk = decision.user, decision.identity, decision.risk
    return AuditEntry(
        time=now,
        event_type=event,
        decision=decision.audit_verdict,
        reason=decision.reason.value,
        principal=identity.principal if identity is not None else "",
        user=session.user_id if session is not None else "",
        organisation=session.organisation if session is not None else "",
        session_hash=session.session_id if session is not None else "",
        device_id=device_id or (session.device_id if session is not None else ""),
        source_ip=source_ip,
        risk_level=risk.level.value if risk is not None else "",
        risk_signals=tuple(s.value for s in risk.signals) if risk is not None else (),
        policy_version=decision.policy_version,
        instance=instance,
        details=(("route", decision.route), ("status", str(decision.status))),
    )


def _event(decision: Decision) -> AuditEvent | None:
    if decision.reason == _STEP_UP:
        return AuditEvent.STEP_UP
    if not decision.allowed:
        return AuditEvent.DECISION_DENIED
    risk = decision.risk
    return _AUDITED_RISK.get(risk.level.value) if risk is not None else None
