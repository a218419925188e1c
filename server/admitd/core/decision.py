"""A decision is a value: allow or deny, why, and which headers go where."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from admitd.core.identity import CertificateProblem, ClientIdentity, User
from admitd.core.risk import RiskAssessment

__all__ = ["Decision", "Reason", "Step", "reason_from_certificate_problem"]


class Reason(StrEnum):
    """Reason codes: they choose the status, fill the JSON body and label metrics and logs."""

    ALLOWED = "allowed"
    PUBLIC_ROUTE = "public_route"
    CERTIFICATE_MISSING = "missing"
    CERTIFICATE_MALFORMED = "malformed"
    CERTIFICATE_CHAIN_TOO_LONG = "chain_too_long"
    CERTIFICATE_EXPIRED = "expired"
    CERTIFICATE_NOT_YET_VALID = "not_yet_valid"
    CERTIFICATE_UNTRUSTED = "untrusted"
    CERTIFICATE_NO_CLIENT_AUTH = "missing_client_auth_eku"
    CERTIFICATE_REVOKED = "revoked"
    CERTIFICATE_REVOCATION_UNKNOWN = "revocation_status_unknown"
    IDENTITY_NOT_ALLOWED = "identity_not_allowed"
    HTTPS_REQUIRED = "https_required"
    NO_MATCHING_ROUTE = "no_matching_route"
    REQUEST_MALFORMED = "request_malformed"
    AUTHORIZATION_UNAVAILABLE = "authorization_unavailable"
    SESSION_REQUIRED = "session_required"
    SESSION_INVALID = "session_invalid"
    SESSION_EXPIRED = "session_expired"
    SESSION_STORE_UNAVAILABLE = "session_store_unavailable"
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (a reason code) a JWT that did not verify
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a reason code, not a secret)
    IDENTITY_PROVIDER_UNAVAILABLE = "identity_provider_unavailable"  # its JWKS unreachable
    MFA_ENROLLMENT_REQUIRED = "mfa_enrollment_required"
    MFA_STEP_UP_REQUIRED = "mfa_step_up_required"
    RISK_CRITICAL = "device_risk_critical"
    RISK_UNAVAILABLE = "risk_unavailable"
    RECOVERY_BLOCKED_BY_RISK = "recovery_blocked_by_risk"
    ROLE_REQUIRED = "role_required"
    SCOPE_REQUIRED = "scope_required"
    CONDITION_FAILED = "condition_failed"

    @property
    def code(self) -> str:
        """The top-level `error.code` of the JSON body."""
        return _CODES.get(self, self.value)

    @property
    def status(self) -> int:
        return _STATUSES.get(self, 403)


_CERT_REASONS = {
    Reason.CERTIFICATE_MALFORMED,
    Reason.CERTIFICATE_CHAIN_TOO_LONG,
    Reason.CERTIFICATE_EXPIRED,
    Reason.CERTIFICATE_NOT_YET_VALID,
    Reason.CERTIFICATE_UNTRUSTED,
    Reason.CERTIFICATE_NO_CLIENT_AUTH,
    Reason.CERTIFICATE_REVOKED,
    Reason.CERTIFICATE_REVOCATION_UNKNOWN,
    Reason.IDENTITY_NOT_ALLOWED,
}
_CODES: dict[Reason, str] = {
    Reason.CERTIFICATE_MISSING: "client_certificate_required",
    **{reason: "client_certificate_invalid" for reason in _CERT_REASONS},
}
# 495 is nginx's "SSL Certificate Error"; Envoy passes it through unchanged.
_STATUSES: dict[Reason, int] = {
    Reason.ALLOWED: 200,
    Reason.PUBLIC_ROUTE: 200,
    Reason.CERTIFICATE_MISSING: 495,
    **{reason: 495 for reason in _CERT_REASONS},
    Reason.REQUEST_MALFORMED: 400,
    Reason.AUTHORIZATION_UNAVAILABLE: 503,
    Reason.SESSION_REQUIRED: 401,
    Reason.SESSION_INVALID: 401,
    Reason.SESSION_EXPIRED: 401,
    Reason.SESSION_STORE_UNAVAILABLE: 503,
    Reason.TOKEN_INVALID: 401,
    Reason.TOKEN_EXPIRED: 401,
    Reason.IDENTITY_PROVIDER_UNAVAILABLE: 503,
    Reason.MFA_ENROLLMENT_REQUIRED: 403,
    Reason.MFA_STEP_UP_REQUIRED: 428,  # RFC 6585; browsers get a 302 instead (redirect_to)
    Reason.RISK_CRITICAL: 403,
    Reason.RISK_UNAVAILABLE: 503,
    Reason.RECOVERY_BLOCKED_BY_RISK: 403,
    Reason.ROLE_REQUIRED: 403,
    Reason.SCOPE_REQUIRED: 403,
    Reason.CONDITION_FAILED: 403,
}

_PROBLEM_REASONS: dict[CertificateProblem, Reason] = {
    CertificateProblem.MISSING: Reason.CERTIFICATE_MISSING,
    CertificateProblem.MALFORMED: Reason.CERTIFICATE_MALFORMED,
    CertificateProblem.CHAIN_TOO_LONG: Reason.CERTIFICATE_CHAIN_TOO_LONG,
    CertificateProblem.EXPIRED: Reason.CERTIFICATE_EXPIRED,
    CertificateProblem.NOT_YET_VALID: Reason.CERTIFICATE_NOT_YET_VALID,
    CertificateProblem.UNTRUSTED: Reason.CERTIFICATE_UNTRUSTED,
    CertificateProblem.MISSING_CLIENT_AUTH_EKU: Reason.CERTIFICATE_NO_CLIENT_AUTH,
    CertificateProblem.REVOKED: Reason.CERTIFICATE_REVOKED,
    CertificateProblem.REVOCATION_UNKNOWN: Reason.CERTIFICATE_REVOCATION_UNKNOWN,
}


def reason_from_certificate_problem(problem: CertificateProblem) -> Reason:
    return _PROBLEM_REASONS[problem]


Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Step:
    """One phase of `decide()` as data: what it looked at and what it concluded
    (`admitd policy explain` prints these; nothing else depends on their wording)."""

    phase: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer Envoy. `message` is safe to show the client (no secrets, no PEM)."""

    allowed: bool
    reason: Reason
    message: str = ""
    route: str = ""
    identity: ClientIdentity | None = None
    upstream_headers: Headers = ()
    client_headers: Headers = ()
    headers_to_remove: tuple[str, ...] = ()
    policy_version: str = ""
    user: User | None = None
    mfa_checked: bool = False  # the route required a fresh MFA verification of this session
    step_up_max_age: int | None = None
    redirect_to: str = ""  # set for a browser step-up: answered as 302 with Location
    details: tuple[tuple[str, str | int], ...] = ()  # extra fields of the JSON error body
    risk: RiskAssessment | None = None
    client_ok_headers: Headers = ()  # response headers for the client on an allowed request
    shadow_reason: Reason | None = None  # a shadow route admitted what it would have denied
    # For the decision log only, never the response (e.g. a CEL evaluation error).
    log_detail: str = ""
    trace: tuple[Step, ...] = field(default=(), compare=False, repr=False)
    status_override: int = 0  # a step-up answered 401 for strict RFC 9470 clients
    # A denial of a browser navigation: answered as an HTML page (same status and reason);
    # every other client gets the JSON body.
    page: bool = False

    @property
    def status(self) -> int:
        if self.redirect_to:
            return 302
        return self.status_override or self.reason.status

    @property
    def code(self) -> str:
        return self.reason.code

    @property
    def audit_verdict(self) -> str:
        """`allow` or `deny`: what the audit log records (every denial is audited)."""
        return "allow" if self.allowed else "deny"
