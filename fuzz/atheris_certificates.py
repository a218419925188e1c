"""atheris: PEM and DER chains (as Envoy and proxies forward them), then the verifier.

The parsers raise only CertificateParseError; the verifier never raises, and accepts a
chain only when its leaf is byte-identical to a certificate the test CA issued.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from cryptography.hazmat.primitives.serialization import Encoding

    from admitd.certs.pem import CertificateParseError, certificates_from_der, certificates_from_pem
    from admitd.certs.revocation import RevocationSource
    from admitd.certs.truststore import trust_store_from_files
    from admitd.certs.verify import CertificateVerifier

from tests.pki_fixtures import build_test_pki, pem

PKI = build_test_pki(Path(tempfile.mkdtemp(prefix="admitd-fuzz-pki-")))
TRUST = trust_store_from_files([PKI.trust_bundle], config_file="fuzz", key="tls.trust_bundle")
REVOCATION = RevocationSource([PKI.crl], None, TRUST)
REVOCATION.load()
VERIFIER = CertificateVerifier(TRUST, lambda: REVOCATION.data, max_chain_depth=8)
ISSUED = {
    i.cert.public_bytes(Encoding.DER) for i in (PKI.alice, PKI.bob, PKI.proxy, PKI.subject_only)
}
SEEDS = [
    b"\x00" + PKI.alice.cert.public_bytes(Encoding.DER),
    b"\x01" + pem(PKI.alice, PKI.client_ca).encode(),
    b"\x00" + PKI.revoked.cert.public_bytes(Encoding.DER),
]


def one_input(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] % 2 == 0:
            chain = certificates_from_der([data[1:]], max_count=8)
        else:
            chain = certificates_from_pem(
                data[1:].decode("latin-1"), max_count=8, url_encoded=data[0] % 4 == 1
            )
    except CertificateParseError:
        return
    try:
        verdict = VERIFIER.verify(chain, datetime.now(UTC))
    except Exception as exc:
        if tolerated(exc):
            return
        raise
    assert (verdict.identity is None) != (verdict.problem is None)
    if verdict.problem is None:
        assert chain[0].public_bytes(Encoding.DER) in ISSUED, "an altered leaf verified"


if __name__ == "__main__":
    main("certificates", one_input, SEEDS)
