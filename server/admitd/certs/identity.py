"""What a verified client certificate says about who the client is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CertificateFacts", "CertificateProblem", "ClientIdentity"]


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
    certificate came from (`peer`, `xfcc`, `x-client-cert`, `client-cert`);
    `proxy` names the trusted proxy that forwarded it, if any.
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
