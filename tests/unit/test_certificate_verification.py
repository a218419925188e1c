"""Certificate context: each way a certificate can fail gets its own reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from admitd.certs.forwarding import ForwardHeader, TrustedProxy
from admitd.certs.revocation import RevocationError, append_deny_entry, deny_list_from_text
from admitd.core.identity import CertificateFacts, CertificateProblem
from admitd.pki import Issued, issue_crl
from tests.malformed_certs import signature_twin
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request


def facts(pki: PkiSet, policy_dir: Path, cert: str) -> CertificateFacts:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl])
    return engine.certificates.facts_for(request(cert=cert), datetime.now(UTC))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("expired", CertificateProblem.EXPIRED),
        ("not_yet_valid", CertificateProblem.NOT_YET_VALID),
        ("untrusted", CertificateProblem.UNTRUSTED),
        ("no_client_eku", CertificateProblem.MISSING_CLIENT_AUTH_EKU),
        ("revoked", CertificateProblem.REVOKED),
    ],
)
def test_bad_certificates_have_specific_problems(
    pki: PkiSet, policy_dir: Path, name: str, problem: CertificateProblem
) -> None:
    issued: Issued = getattr(pki, name)
    result = facts(pki, policy_dir, url_pem(issued))
    assert result.identity is None
    assert result.problem is problem


def test_valid_leaf_yields_identity(pki: PkiSet, policy_dir: Path) -> None:
    result = facts(pki, policy_dir, url_pem(pki.alice))
    assert result.problem is None and result.identity is not None
    assert result.identity.principal == "spiffe://test.example/user/alice"
    assert result.identity.dns_names == ("alice.clients.test",)
    assert len(result.identity.fingerprint_sha256) == 64


def test_subject_only_certificate_verifies(pki: PkiSet, policy_dir: Path) -> None:
    result = facts(pki, policy_dir, url_pem(pki.subject_only))
    assert result.identity is not None
    assert result.identity.principal == "CN=batch-job,O=admitd dev"


def test_intermediate_may_arrive_in_the_presented_chain(pki: PkiSet, policy_dir: Path) -> None:
    engine, _ = engine_for(pki.root_only_bundle, policy_dir)
    now = datetime.now(UTC)
    leaf_only = engine.certificates.facts_for(request(cert=url_pem(pki.alice)), now)
    with_chain = engine.certificates.facts_for(request(cert=url_pem(pki.alice, pki.client_ca)), now)
    assert leaf_only.problem is CertificateProblem.UNTRUSTED
    assert with_chain.identity is not None


def test_missing_and_malformed(pki: PkiSet, policy_dir: Path) -> None:
    assert facts(pki, policy_dir, "").problem is CertificateProblem.MISSING
    assert (
        facts(pki, policy_dir, "-----BEGIN%20CERTIFICATE-----%0Agarbage").problem
        is CertificateProblem.MALFORMED
    )
    chain = url_pem(pki.alice) * 50
    assert facts(pki, policy_dir, chain).problem is CertificateProblem.CHAIN_TOO_LONG


def test_expired_crl_means_status_unknown(pki: PkiSet, policy_dir: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale.crl.pem"
    stale.write_bytes(issue_crl(pki.client_ca, [], days=0))
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[stale])
    later = datetime.now(UTC) + timedelta(hours=1)
    result = engine.certificates.facts_for(request(cert=url_pem(pki.alice)), later)
    assert result.problem is CertificateProblem.REVOCATION_UNKNOWN


def test_deny_list_change_applies_without_restart(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    deny = tmp_path / "deny.txt"
    deny.write_text("# empty\n")
    engine, revocation = engine_for(pki.trust_bundle, policy_dir, deny_list=deny)
    ctx = request(cert=url_pem(pki.bob))
    now = datetime.now(UTC)
    assert engine.certificates.facts_for(ctx, now).identity is not None  # cached as valid
    append_deny_entry(deny, serial=f"{pki.bob.cert.serial_number:x}", comment="lost laptop")
    assert revocation.reload_if_changed()
    engine.certificates.invalidate()
    assert engine.certificates.facts_for(ctx, now).problem is CertificateProblem.REVOKED


def test_deny_list_by_fingerprint_and_bad_lines(pki: PkiSet) -> None:
    fingerprint = pki.alice.cert.fingerprint(hashes.SHA256())
    parsed = deny_list_from_text(
        f"sha256:{fingerprint.hex(':')}\nserial:0A # x\n", source="deny.txt"
    )
    assert fingerprint.hex() in parsed.fingerprints and 10 in parsed.serials
    with pytest.raises(RevocationError, match=r"deny.txt:2"):
        deny_list_from_text("serial:01\nsha256:nothex\n", source="deny.txt")


def test_bad_crl_reload_keeps_previous_data(pki: PkiSet, policy_dir: Path, tmp_path: Path) -> None:
    crl = tmp_path / "crl.pem"
    crl.write_bytes(pki.crl.read_bytes())
    engine, revocation = engine_for(pki.trust_bundle, policy_dir, crl_files=[crl])
    crl.write_text("garbage")
    assert not revocation.reload_if_changed()
    result = engine.certificates.facts_for(request(cert=url_pem(pki.revoked)), datetime.now(UTC))
    assert result.problem is CertificateProblem.REVOKED


def test_forwarded_headers_from_untrusted_peer_are_ignored(pki: PkiSet, policy_dir: Path) -> None:
    proxy = TrustedProxy(
        "edge",
        ForwardHeader.X_CLIENT_CERT,
        principals=frozenset({"spiffe://test.example/proxy/edge"}),
    )
    engine, _ = engine_for(pki.trust_bundle, policy_dir, proxies=[proxy])
    forged = {"x-client-cert": url_pem(pki.alice)}
    result = engine.certificates.facts_for(
        request(cert=url_pem(pki.bob), headers=forged), datetime.now(UTC)
    )
    assert result.identity is not None and result.identity.principal.endswith("/bob")
    no_peer = engine.certificates.facts_for(request(headers=forged), datetime.now(UTC))
    assert no_peer.problem is CertificateProblem.MISSING


def test_trusted_proxy_by_principal_forwards_xfcc(pki: PkiSet, policy_dir: Path) -> None:
    proxy = TrustedProxy(
        "edge", ForwardHeader.XFCC, principals=frozenset({"spiffe://test.example/proxy/edge"})
    )
    engine, _ = engine_for(pki.trust_bundle, policy_dir, proxies=[proxy])
    xfcc = f'Hash=00;Cert="{url_pem(pki.alice)}";URI=spiffe://test.example/user/alice'
    ctx = request(cert=url_pem(pki.proxy), headers={"x-forwarded-client-cert": xfcc})
    result = engine.certificates.facts_for(ctx, datetime.now(UTC))
    assert (result.source, result.proxy) == ("xfcc", "edge")
    assert result.identity is not None and result.identity.principal.endswith("/alice")


def test_trusted_proxy_by_cidr_with_rfc9440(pki: PkiSet, policy_dir: Path) -> None:
    import base64
    import ipaddress

    from cryptography.hazmat.primitives.serialization import Encoding

    proxy = TrustedProxy(
        "lb", ForwardHeader.CLIENT_CERT, networks=(ipaddress.ip_network("10.0.0.0/8"),)
    )
    engine, _ = engine_for(pki.root_only_bundle, policy_dir, proxies=[proxy])
    leaf = base64.b64encode(pki.alice.cert.public_bytes(Encoding.DER)).decode()
    ca = base64.b64encode(pki.client_ca.cert.public_bytes(Encoding.DER)).decode()
    headers = {"client-cert": f":{leaf}:", "client-cert-chain": f":{ca}:"}
    trusted = engine.certificates.facts_for(
        request(headers=headers, source="10.1.2.3"), datetime.now(UTC)
    )
    assert trusted.identity is not None and trusted.proxy == "lb"
    outsider = engine.certificates.facts_for(
        request(headers=headers, source="192.0.2.1"), datetime.now(UTC)
    )
    assert outsider.problem is CertificateProblem.MISSING


def test_trusted_proxy_with_malformed_forwarded_header(pki: PkiSet, policy_dir: Path) -> None:
    proxy = TrustedProxy(
        "edge", ForwardHeader.XFCC, principals=frozenset({"spiffe://test.example/proxy/edge"})
    )
    engine, _ = engine_for(pki.trust_bundle, policy_dir, proxies=[proxy])
    ctx = request(
        cert=url_pem(pki.proxy), headers={"x-forwarded-client-cert": 'Cert="unterminated'}
    )
    assert (
        engine.certificates.facts_for(ctx, datetime.now(UTC)).problem
        is CertificateProblem.MALFORMED
    )


def test_a_certificate_revoked_with_cert_stays_revoked_when_re_encoded(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    deny = tmp_path / "deny.txt"
    leaf = tmp_path / "alice.pem"
    leaf.write_bytes(pki.alice.cert_pem)
    append_deny_entry(deny, cert_file=leaf)
    engine, _ = engine_for(pki.trust_bundle, policy_dir, deny_list=deny)
    twin = signature_twin(pki.alice, pki.client_ca)
    assert twin.tbs_certificate_bytes == pki.alice.cert.tbs_certificate_bytes
    assert twin.fingerprint(hashes.SHA256()) != pki.alice.cert.fingerprint(hashes.SHA256())
    for cert in (pki.alice.cert, twin):
        presented = quote(cert.public_bytes(Encoding.PEM).decode(), safe="")
        facts = engine.certificates.facts_for(request(cert=presented), datetime.now(UTC))
        assert facts.problem is CertificateProblem.REVOKED
