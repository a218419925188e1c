"""Facts gathered before the decision (lookups happen in the service, never in the core)."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.certs.identity import CertificateFacts
from admitd.risk.model import RiskAssessment
from admitd.sessions.model import SessionLookup, SessionState

__all__ = ["CertificateFacts", "Facts"]


_NO_SESSION = SessionLookup(SessionState.NOT_PRESENTED)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything `decide()` may know beyond the request and the policy.

    `now` is Unix seconds, read once by the service: the core never reads a clock.
    """

    certificate: CertificateFacts
    session: SessionLookup = _NO_SESSION
    now: float = 0.0
    risk: RiskAssessment | None = None  # only for a live session
    # The live session's risk could not be assessed (its baseline could not be read).
    risk_unavailable: bool = False
