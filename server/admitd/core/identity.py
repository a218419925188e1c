"""Who is asking: the workload (a verified client certificate) and, optionally, the user.

The workload comes from the certificate adapter (`admitd.certs`). The user comes from an
identity source: an admitd session today (`admitd.sessions.identity`); any other source
(an IdP token) is another adapter producing the same `User`. The core never knows which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CertificateFacts",
    "CertificateProblem",
    "ClientIdentity",
    "MfaMethod",
    "User",
    "UserLookup",
    "UserState",
]


class CertificateProblem(StrEnum):
    """Why a client certificate was not accepted (the `reason` in a 495 body)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    CHAIN_TOO_LONG = "chain_too_long"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNTRUSTED = "untrusted"
    MISSING_CLIENT_AUTH_EKU = "missing_client_auth_eku"
    REVOKED = "revoked"
    REVOCATION_UNKNOWN = "revocation_status_unknown"


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Identity facts of a certificate whose chain, validity and revocation were checked."""

    fingerprint_sha256: str
    spki_sha256: str
    serial_hex: str
    subject: str
    uris: tuple[str, ...]
    dns_names: tuple[str, ...]

    @property
    def principal(self) -> str:
        """The name upstreams should use: first URI SAN (SPIFFE ID), else DNS SAN, else subject."""
        if self.uris:
            return self.uris[0]
        if self.dns_names:
            return self.dns_names[0]
        return self.subject


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """The outcome of looking at the client certificate of one request.

    Exactly one of `identity` and `problem` is set. `source` names where the
    certificate came from (`peer`, `xfcc`, `x-client-cert`, `client-cert`), or `mesh`
    for an identity the asking Envoy verified; `proxy` names the trusted proxy that
    forwarded it, or the mesh caller that vouched for it, if any.
    """

    identity: ClientIdentity | None
    problem: CertificateProblem | None
    detail: str = ""
    source: str = "peer"
    proxy: str = ""

    @classmethod
    def missing(cls, source: str = "peer", proxy: str = "") -> CertificateFacts:
        return cls(None, CertificateProblem.MISSING, "no client certificate", source, proxy)

    @classmethod
    def not_examined(cls) -> CertificateFacts:
        """For a public route: it admits everyone, so the certificate is never parsed."""
        return cls(None, CertificateProblem.MISSING, "not examined (public route)", "not_examined")


class MfaMethod(StrEnum):
    TOTP = "totp"
    PASSKEY = "passkey"


@dataclass(frozen=True, slots=True)
class User:
    """The person behind a request, as an identity source vouches for them.

    `session_id` names the session (or token) they presented: the upstream gets it as
    `x-admitd-session`, never the credential itself. `factors` are their active second
    factors; `mfa_verified_at` / `mfa_method` their latest verification, and
    `mfa_verified_by` how it was verified (`admitd`: the step-up page or the admin API).
    """

    user_id: str
    organisation: str
    roles: frozenset[str]
    session_id: str = ""
    device_id: str = ""
    factors: frozenset[MfaMethod] = frozenset()
    mfa_verified_at: float | None = None
    mfa_method: MfaMethod | None = None
    mfa_verified_by: str = "admitd"
    source: str = "session"  # the identity source adapter that produced this user
    # How a stale MFA is answered for this user's credential (RFC 9470 for an IdP token):
    # `acr_values` named in the challenge, and 428 (the security policy) or 401 (strict 9470).
    step_up_acr_values: str = ""
    step_up_status: int = 428
    # OAuth scopes the user's token grants (`scope` / `scp`); an admitd session has none.
    scopes: frozenset[str] = frozenset()

    def mfa_age(self, now: float) -> float | None:
        """Seconds since the last MFA verification, or None if never verified."""
        return None if self.mfa_verified_at is None else max(0.0, now - self.mfa_verified_at)


class UserState(StrEnum):
    """What looking up the request's user credential (a session token) found."""

    NOT_PRESENTED = "not_presented"  # the request carries no credential
    MALFORMED = "malformed"  # a credential, but not one the source could have issued
    UNKNOWN = "unknown"  # well-formed, but unknown (revoked, expired, never existed)
    EXPIRED = "expired"
    ACTIVE = "active"
    UNAVAILABLE = "unavailable"  # the source could not answer: fail closed


@dataclass(frozen=True, slots=True)
class UserLookup:
    state: UserState
    user: User | None = None
    carrier: str = ""  # "cookie", "bearer" (an admitd session token) or "jwt" (an IdP token)
    detail: str = ""  # why a credential was refused: for the decision log only, never the client

    @classmethod
    def of(cls, state: UserState, carrier: str = "", detail: str = "") -> UserLookup:
        return cls(state, None, carrier, detail)
