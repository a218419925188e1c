"""Mesh identity: the workload identity that the asking Envoy verified itself.

Behind Istio's sidecars and waypoints, Envoy Gateway or admitd's own sidecar config,
Envoy terminates mutual TLS with the mesh CA and tells admitd only whom it verified
(`attributes.source.principal`, and the XFCC it set with SANITIZE_SET). Anyone who can
send admitd a CheckRequest can write those fields, so admitd believes them only from
callers the config names (`mesh.callers`): a Check that arrived over admitd's own Unix
socket, from a named source address, or from a named certificate on `tls_listen`.
From every other caller they mean nothing. See docs/mesh.md for when this is safe.

Even from a trusted caller the identity is checked: a well-formed SPIFFE ID of a trust
domain the config names, not on admitd's deny list (`spiffe:` entries), and when the
certificate itself is at hand (`include_peer_certificate`, or XFCC `Cert=`) it must be
within its validity, name exactly that SPIFFE ID, and not be denied by serial or digest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from admitd.certs.callers import CheckCaller
from admitd.certs.decoding import CERTIFICATE_ERRORS, decoding_detail, strict_decoding
from admitd.certs.pem import CertificateParseError, certificates_from_pem
from admitd.certs.revocation import RevocationData
from admitd.certs.spiffe import SpiffeIdError, spiffe_trust_domain, workload_id_problem
from admitd.certs.verify import Verdict, failed_verdict, identity_from_certificate, validity_problem
from admitd.certs.xfcc import XfccError, parse_xfcc
from admitd.core.context import Caller
from admitd.core.identity import CertificateProblem, ClientIdentity

__all__ = ["MESH_SOURCE", "XFCC", "MeshSettings", "MeshVerifier"]

MESH_SOURCE = "mesh"  # CertificateFacts.source for an identity a mesh caller vouched for
XFCC = "x-forwarded-client-cert"


@dataclass(frozen=True, slots=True)
class MeshSettings:
    trust_domains: frozenset[str]
    callers: tuple[CheckCaller, ...]
    require_certificate: bool = False  # refuse a Check that carries no certificate at all
    # A Check from a caller neither mesh.callers nor trusted_proxies[].caller names:
    # "refuse" gives it no certificate identity at all (anyone who reaches a Check
    # listener could otherwise replay a public SVID in source.certificate); "edge"
    # verifies source.certificate as an edge deployment does.
    unnamed_callers: str = "refuse"


class MeshVerifier:
    """The verdict on one vouched-for identity; pure, so ClientCertificates caches it."""

    def __init__(self, settings: MeshSettings, revocation: Callable[[], RevocationData]) -> None:
        self.settings = settings
        self._revocation = revocation

    def caller_for(self, caller: Caller) -> CheckCaller | None:
        if not caller.transport:
            return None
        return next((c for c in self.settings.callers if c.recognises(caller)), None)

    def verdict(self, principal: str, peer_certificate: str, xfcc: str, now: datetime) -> Verdict:
        """Never raises: what cannot be read is `malformed`, what does not match `untrusted`."""
        if not principal:
            return failed_verdict(
                CertificateProblem.MISSING,
                "the mesh caller reported no verified peer (source.principal is empty)",
            )
        try:
            domain = spiffe_trust_domain(principal)
        except SpiffeIdError as exc:
            return failed_verdict(CertificateProblem.MALFORMED, f"not a SPIFFE ID: {exc}")
        not_workload = workload_id_problem(principal)
        if not_workload:
            return failed_verdict(CertificateProblem.MALFORMED, f"SPIFFE ID {not_workload}")
        if domain not in self.settings.trust_domains:
            return failed_verdict(
                CertificateProblem.UNTRUSTED, f"trust domain {domain} is not in mesh.trust_domains"
            )
        deny = self._revocation().deny
        if principal in deny.spiffe_ids:
            return failed_verdict(CertificateProblem.REVOKED, "SPIFFE ID is on the deny list")
        try:
            pem = peer_certificate or _xfcc_certificate(xfcc, principal)
        except (XfccError, CertificateParseError) as exc:
            return failed_verdict(CertificateProblem.MALFORMED, f"{XFCC}: {exc}")
        if not pem:
            if self.settings.require_certificate:
                return failed_verdict(
                    CertificateProblem.MISSING,
                    "mesh.require_certificate: enable include_peer_certificate on the caller",
                )
            return Verdict(ClientIdentity("", "", "", "", (principal,), ()), None, "")
        try:
            with strict_decoding():
                return self._certificate_verdict(principal, pem, now)
        except CertificateParseError as exc:
            problem = (
                CertificateProblem.CHAIN_TOO_LONG if exc.too_long else CertificateProblem.MALFORMED
            )
            return failed_verdict(problem, str(exc))
        except CERTIFICATE_ERRORS as exc:
            return failed_verdict(CertificateProblem.MALFORMED, decoding_detail(exc))

    def _certificate_verdict(self, principal: str, pem: str, now: datetime) -> Verdict:
        leaf = certificates_from_pem(pem, max_count=1)[0]
        problem = validity_problem(leaf, now)
        if problem is not None:
            return problem
        identity = identity_from_certificate(leaf)
        if identity.uris != (principal,):
            # An X.509-SVID carries exactly one URI SAN: its SPIFFE ID.
            return failed_verdict(
                CertificateProblem.UNTRUSTED,
                "the certificate's URI SAN is not the SPIFFE ID the caller reported",
            )
        if self._revocation().deny.denies(leaf, identity.fingerprint_sha256):
            return failed_verdict(CertificateProblem.REVOKED, "certificate is revoked")
        start, end = leaf.not_valid_before_utc.timestamp(), leaf.not_valid_after_utc.timestamp()
        issuer = leaf.issuer.rfc4514_string()
        return Verdict(
            identity, None, "", valid_from=start, valid_until=end, leaf_not_after=end, issuer=issuer
        )


def _xfcc_certificate(raw: str, principal: str) -> str:
    """The leaf PEM in the element the asking Envoy set (the last: with SANITIZE_SET the
    only one), or "" when it has no Cert; its URI must be the reported principal."""
    if not raw:
        return ""
    elements = parse_xfcc(raw)
    if not elements:
        return ""
    element = elements[-1]
    uri = element.get("uri")
    if uri is not None and uri != principal:
        raise XfccError("URI does not match source.principal")
    return element.get("cert", "")
