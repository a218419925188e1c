"""Facts gathered before the decision (lookups happen in the service, never in the core)."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.core.identity import CertificateFacts, UserLookup, UserState
from admitd.core.risk import RiskAssessment

__all__ = ["CertificateFacts", "Facts"]


_NO_USER = UserLookup(UserState.NOT_PRESENTED)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything `decide()` may know beyond the request and the policy.

    `now` is Unix seconds, read once by the service: the core never reads a clock.
    """

    certificate: CertificateFacts
    user: UserLookup = _NO_USER  # who, beyond the workload; from an identity source
    now: float = 0.0
    risk: RiskAssessment | None = None  # only for a live user
    # The live session's risk could not be assessed (its baseline could not be read).
    risk_unavailable: bool = False
    # The identity source's own credentials on this request, kept from the upstream:
    # the name of its cookie, and whether `authorization` carries its bearer token.
    credential_cookie: str = ""
    credential_bearer: bool = False
