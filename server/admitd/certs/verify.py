"""Verify a client certificate chain: trust, validity, clientAuth EKU, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from admitd.certs.decoding import CERTIFICATE_ERRORS, decoding_detail, strict_decoding
from admitd.certs.revocation import RevocationData
from admitd.certs.truststore import TrustStore
from admitd.core.identity import CertificateProblem, ClientIdentity

__all__ = [
    "FOREVER",
    "CertificateVerifier",
    "Verdict",
    "failed_verdict",
    "identity_from_certificate",
    "validity_problem",
]

FOREVER = float("inf")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verification outcome and the time window (epoch seconds) in which it holds."""

    identity: ClientIdentity | None
    problem: CertificateProblem | None
    detail: str
    valid_from: float = -FOREVER
    valid_until: float = FOREVER
    leaf_not_after: float = FOREVER  # the accepted leaf's notAfter (expiry metrics)
    issuer: str = ""  # the accepted leaf's issuer, RFC 4514 (expiry metrics, by CA)

    def holds_at(self, timestamp: float) -> bool:
        return self.valid_from <= timestamp < self.valid_until


def failed_verdict(problem: CertificateProblem, detail: str, until: float = FOREVER) -> Verdict:
    return Verdict(None, problem, detail, valid_until=until)


class CertificateVerifier:
    """Checks one presented chain against the trust store and current revocation data."""

    def __init__(
        self,
        trust: TrustStore,
        revocation: Callable[[], RevocationData],
        *,
        max_chain_depth: int,
    ) -> None:
        self._trust = trust
        self._store = Store(list(trust.roots))
        self._revocation = revocation
        self._max_depth = max_chain_depth
        # Identities may live only in the subject, so a SAN is optional on the leaf;
        # everything else follows the Web PKI defaults of `cryptography`.
        self._ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
        )

    def verify(self, chain: Sequence[x509.Certificate], now: datetime) -> Verdict:
        """Never raises for a hostile chain: what `cryptography` cannot decode is `malformed`."""
        try:
            with strict_decoding():
                return self._verify(chain, now)
        except CERTIFICATE_ERRORS as exc:
            return failed_verdict(CertificateProblem.MALFORMED, decoding_detail(exc))

    def _verify(self, chain: Sequence[x509.Certificate], now: datetime) -> Verdict:
        leaf = chain[0]
        early = validity_problem(leaf, now) or _eku_problem(leaf)
        if early is not None:
            return early
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(self._max_depth)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=self._ee_policy
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, [*chain[1:], *self._trust.intermediates])
        except VerificationError as exc:
            return failed_verdict(CertificateProblem.UNTRUSTED, f"chain does not verify: {exc}")
        identity = identity_from_certificate(leaf)
        status = self._revocation().status(verified.chain, identity.fingerprint_sha256, now)
        if status.problem == "revoked":
            return failed_verdict(CertificateProblem.REVOKED, "certificate is revoked")
        if status.problem:
            return failed_verdict(
                CertificateProblem.REVOCATION_UNKNOWN, status.problem.removeprefix("unknown: ")
            )
        # A cached admission must end when any part of it would no longer hold:
        # a certificate's notAfter, or the nextUpdate of a CRL it was checked against.
        expiry = min(c.not_valid_after_utc.timestamp() for c in verified.chain)
        return Verdict(
            identity,
            None,
            "",
            valid_from=max(c.not_valid_before_utc.timestamp() for c in verified.chain),
            valid_until=min(expiry, status.fresh_until),
            leaf_not_after=leaf.not_valid_after_utc.timestamp(),
            issuer=leaf.issuer.rfc4514_string(),
        )


def validity_problem(leaf: x509.Certificate, now: datetime) -> Verdict | None:
    """`expired` or `not_yet_valid` at `now`, or None."""
    if now > leaf.not_valid_after_utc:
        return failed_verdict(
            CertificateProblem.EXPIRED, f"expired at {leaf.not_valid_after_utc.isoformat()}"
        )
    if now < leaf.not_valid_before_utc:
        starts = leaf.not_valid_before_utc
        return failed_verdict(
            CertificateProblem.NOT_YET_VALID, f"valid from {starts.isoformat()}", starts.timestamp()
        )
    return None


def _eku_problem(leaf: x509.Certificate) -> Verdict | None:
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return failed_verdict(
            CertificateProblem.MISSING_CLIENT_AUTH_EKU, "no clientAuth extended key usage"
        )
    return None


def identity_from_certificate(cert: x509.Certificate) -> ClientIdentity:
    """Identity facts of a certificate (the caller has already verified it)."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        uris, dns_names = (), ()
    return ClientIdentity(
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        serial_hex=f"{cert.serial_number:x}",
        subject=cert.subject.rfc4514_string(),
        uris=uris,
        dns_names=dns_names,
    )
