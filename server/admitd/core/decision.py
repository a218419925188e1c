"""A decision is a value: allow or deny, why, and which headers go where."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from admitd.certs.identity import CertificateProblem, ClientIdentity

__all__ = ["Decision", "Reason", "reason_from_certificate_problem"]


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

    @property
    def status(self) -> int:
        return self.reason.status

    @property
    def code(self) -> str:
        return self.reason.code

    @property
    def audit_verdict(self) -> str:
        """`allow` or `deny`: what the audit log records (every denial is audited)."""
        return "allow" if self.allowed else "deny"
