"""Audit entries from Check decisions: every denial, every step-up, every high or critical
risk evaluation; ordinary allows give none."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from admitd.audit.entry import AuditEntry, AuditEvent, new_salt

if TYPE_CHECKING:  # the core is not imported at run time: `admitd audit` does not need it
    from admitd.core.decision import Decision

__all__ = ["CapturedDecision", "audit_entry_from_decision", "audit_event", "entry_from_captured"]

_STEP_UP = "mfa_step_up_required"  # Reason.MFA_STEP_UP_REQUIRED (a StrEnum compares equal)
_AUDITED_RISK = {"high": AuditEvent.RISK_HIGH, "critical": AuditEvent.RISK_CRITICAL}
DEVICE_ID_MAX = 128  # characters of a client-sent device ID kept in an entry


class CapturedDecision(NamedTuple):
    """What the Check hands the audit writer: the (immutable) decision and the request
    facts the entry needs, with the decision's own time. Everything else (the entry,
    its salt, the time's text) is built by the writer, off the hot path."""

    event: AuditEvent
    decision: Decision
    source_ip: str
    device_id: str  # as the client sent it; cut to DEVICE_ID_MAX by the writer
    time: float


def audit_event(decision: Decision) -> AuditEvent | None:
    """The event a decision is audited as, or None when it needs no audit.

    A step-up (428 or a browser 302) is also a denial; it gets its own event type
    so dashboards can tell friction from refusals.
    """
    if decision.reason == _STEP_UP:
        return AuditEvent.STEP_UP
    if not decision.allowed:
        return AuditEvent.DECISION_DENIED
    risk = decision.risk
    return _AUDITED_RISK.get(risk.level.value) if risk is not None else None


def audit_entry_from_decision(
    decision: Decision,
    *,
    instance: str,
    source_ip: str,
    device_id: str,
    now: float,
    salt: str | None = None,
) -> AuditEntry | None:
    """The entry to append after a Check, or None when the decision needs no audit.

    `device_id` falls back to the session's device when the caller has none.
    """
    event = audit_event(decision)
    if event is None:
        return None
    return entry_from_captured(
        CapturedDecision(event, decision, source_ip, device_id, now), instance, salt
    )


def entry_from_captured(
    captured: CapturedDecision, instance: str, salt: str | None = None
) -> AuditEntry:
    """The entry of a captured decision, as the writer builds it (with its own time)."""
    decision = captured.decision
    session, identity, risk = decision.user, decision.identity, decision.risk
    device_id = captured.device_id[:DEVICE_ID_MAX]
    return AuditEntry(
        time=captured.time,
        event_type=captured.event,
        decision=decision.audit_verdict,
        reason=decision.reason.value,
        principal=identity.principal if identity is not None else "",
        user=session.user_id if session is not None else "",
        organisation=session.organisation if session is not None else "",
        session_hash=session.session_id if session is not None else "",
        device_id=device_id or (session.device_id if session is not None else ""),
        source_ip=captured.source_ip,
        risk_level=risk.level.value if risk is not None else "",
        risk_signals=tuple(s.value for s in risk.signals) if risk is not None else (),
        policy_version=decision.policy_version,
        instance=instance,
        details=(("route", decision.route), ("status", str(decision.status))),
        salt=salt if salt is not None else new_salt(),
    )
