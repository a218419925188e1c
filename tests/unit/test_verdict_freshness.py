"""A cached certificate verdict ends at the chain's notAfter or a used CRL's nextUpdate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.core.identity import CertificateProblem
from admitd.pki import issue_crl
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request


def crl_file(directory: Path, name: str, crl: bytes) -> Path:
    path = directory / name
    path.write_bytes(crl)
    return path


def test_a_cached_admission_ends_when_the_crl_goes_stale(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    crl = crl_file(tmp_path, "ca.crl", issue_crl(pki.client_ca, [], days=1))
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[crl])
    now = datetime.now(UTC)
    alice = request(cert=url_pem(pki.alice))
    assert engine.certificates.facts_for(alice, now).identity is not None  # cached as valid
    stale = now + timedelta(days=2)  # the CRL's nextUpdate has passed; alice is still valid
    late = engine.certificates.facts_for(alice, stale)
    first_time = engine.certificates.facts_for(request(cert=url_pem(pki.bob)), stale)
    assert first_time.problem is CertificateProblem.REVOCATION_UNKNOWN
    assert late.problem is CertificateProblem.REVOCATION_UNKNOWN  # same answer as a new client


def test_the_verdict_window_ends_at_the_earliest_crl_or_expiry(pki: PkiSet, tmp_path: Path) -> None:
    from admitd.certs.revocation import RevocationSource

    root_crl = crl_file(tmp_path, "root.crl", issue_crl(pki.root, [], days=2))
    ca_crl = crl_file(tmp_path, "ca.crl", issue_crl(pki.client_ca, [], days=5))
    trust = trust_store_from_files([pki.trust_bundle], config_file="t", key="tls.trust_bundle")
    revocation = RevocationSource([root_crl, ca_crl], None, trust)
    revocation.load()
    verifier = CertificateVerifier(trust, lambda: revocation.data, max_chain_depth=8)
    now = datetime.now(UTC)
    verdict = verifier.verify([pki.alice.cert], now)
    root_next = now + timedelta(days=2)
    assert verdict.identity is not None
    assert abs(verdict.valid_until - root_next.timestamp()) < 600  # the root's CRL, not notAfter
    assert verdict.holds_at((root_next - timedelta(hours=1)).timestamp())
    assert not verdict.holds_at((root_next + timedelta(hours=1)).timestamp())

    without_crls = CertificateVerifier(
        trust, lambda: RevocationSource([], None, trust).data, max_chain_depth=8
    ).verify([pki.alice.cert], now)
    assert without_crls.valid_until == pki.alice.cert.not_valid_after_utc.timestamp()
