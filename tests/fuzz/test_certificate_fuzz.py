"""Fuzz the certificate readers: PEM and DER chains as Envoy and trusted proxies forward them.

Correct means: the parsers raise only `CertificateParseError`; the verifier never raises and
accepts a chain only when its leaf is byte-identical to a certificate the CA issued (a byte
flip cannot keep a signature valid); and a whole Check over any such certificate, from the
peer or forwarded by a trusted proxy in any of the three header formats, gets a specific
certificate reason, never the fail-closed path.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import Mock
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import event, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from admitd.certs.forwarding import ForwardHeader, TrustedProxy
from admitd.certs.pem import CertificateParseError, certificates_from_der, certificates_from_pem
from admitd.certs.revocation import RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from tests.fuzz.budget import FUZZ, bounded, bounded_async
from tests.fuzz.check_requests import RequestSpec
from tests.fuzz.der import der_of, pem_of, resigned, signature_bits_at
from tests.fuzz.responses import FAIL_CLOSED_LOG, outcome_of
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for

pytestmark = pytest.mark.timeout(120)

_CERTIFICATE_REASONS = {
    "allowed",
    "missing",
    "malformed",
    "chain_too_long",
    "expired",
    "not_yet_valid",
    "untrusted",
    "missing_client_auth_eku",
    "revoked",
    "revocation_status_unknown",
    "identity_not_allowed",
}


@st.composite
def _edited(draw: st.DrawFn, blob: bytes) -> bytes:
    """`blob` with one to four byte-level edits: flips, overwrites, inserts, deletes, a cut."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            data[at : at + 2] = draw(st.binary(min_size=1, max_size=2))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return bytes(data)


@pytest.fixture(scope="module")
def verifier(pki: PkiSet) -> CertificateVerifier:
    trust = trust_store_from_files([pki.trust_bundle], config_file="test", key="tls.trust_bundle")
    revocation = RevocationSource([pki.crl], None, trust)
    revocation.load()
    return CertificateVerifier(trust, lambda: revocation.data, max_chain_depth=8)


@pytest.fixture(scope="module")
def issued_ders(pki: PkiSet) -> frozenset[bytes]:
    return frozenset(
        der_of(i) for i in (pki.alice, pki.bob, pki.proxy, pki.subject_only, pki.revoked)
    )


def _assert_verdict_honest(
    verifier: CertificateVerifier, chain: list[x509.Certificate], issued: frozenset[bytes]
) -> None:
    verdict = bounded(lambda: verifier.verify(chain, datetime.now(UTC)), "verify")
    assert (verdict.identity is None) != (verdict.problem is None)
    if verdict.problem is None:
        leaf = chain[0].public_bytes(Encoding.DER)
        assert leaf in issued, "an altered leaf verified"


@FUZZ
@given(data=st.data())
def test_edited_der_parses_or_is_refused_and_never_verifies_altered(
    pki: PkiSet, verifier: CertificateVerifier, issued_ders: frozenset[bytes], data: st.DataObject
) -> None:
    leaf = data.draw(st.sampled_from([pki.alice, pki.bob, pki.revoked, pki.expired]), label="leaf")
    der = data.draw(_edited(der_of(leaf)), label="der")
    with_ca = data.draw(st.booleans(), label="with CA")
    blobs = [der, der_of(pki.client_ca)] if with_ca else [der]
    try:
        chain = bounded(lambda: certificates_from_der(blobs, max_count=8), "DER parse")
    except CertificateParseError:
        return
    _assert_verdict_honest(verifier, chain, issued_ders)


@FUZZ
@given(data=st.data())
def test_edited_pem_text_parses_or_is_refused(
    pki: PkiSet, verifier: CertificateVerifier, issued_ders: frozenset[bytes], data: st.DataObject
) -> None:
    text = url_pem(pki.alice, pki.client_ca)
    if data.draw(st.booleans(), label="decoded"):
        text = (pki.alice.cert_pem + pki.client_ca.cert_pem).decode()
    edited = data.draw(_edited(text.encode()), label="pem").decode("latin-1")
    url_encoded = data.draw(st.booleans(), label="url_encoded")
    try:
        chain = bounded(
            lambda: certificates_from_pem(edited, max_count=8, url_encoded=url_encoded), "PEM parse"
        )
    except CertificateParseError:
        return
    _assert_verdict_honest(verifier, chain, issued_ders)


@FUZZ
@given(data=st.data())
def test_edited_and_resigned_certificates_never_raise(
    pki: PkiSet, verifier: CertificateVerifier, data: st.DataObject
) -> None:
    tbs = data.draw(_edited(pki.alice.cert.tbs_certificate_bytes), label="tbs")
    blob = resigned(tbs, pki.client_ca)
    try:
        chain = bounded(lambda: certificates_from_der([blob], max_count=8), "DER parse")
    except CertificateParseError:
        return
    verdict = bounded(lambda: verifier.verify(chain, datetime.now(UTC)), "verify")
    assert (verdict.identity is None) != (verdict.problem is None)


# --- the whole Check, from the peer and from trusted proxies --------------------------------

_PROXY_NET = (ipaddress.ip_network("127.0.0.0/8"),)
_PROXIES = {
    ForwardHeader.XFCC: TrustedProxy("xfcc-lb", ForwardHeader.XFCC, networks=_PROXY_NET),
    ForwardHeader.X_CLIENT_CERT: TrustedProxy(
        "pem-lb", ForwardHeader.X_CLIENT_CERT, networks=(ipaddress.ip_network("127.0.0.2/32"),)
    ),
    ForwardHeader.CLIENT_CERT: TrustedProxy(
        "rfc9440-lb", ForwardHeader.CLIENT_CERT, networks=(ipaddress.ip_network("127.0.0.3/32"),)
    ),
}
_SOURCES = {  # first match wins: 127.0.0.1 is the XFCC proxy only
    ForwardHeader.XFCC: "127.0.0.1",
    ForwardHeader.X_CLIENT_CERT: "127.0.0.2",
    ForwardHeader.CLIENT_CERT: "127.0.0.3",
}


@pytest.fixture
def proxied_service(pki: PkiSet, cert_only_policy: Path) -> AuthorizationService:
    proxies = (
        _PROXIES[ForwardHeader.CLIENT_CERT],
        _PROXIES[ForwardHeader.X_CLIENT_CERT],
        _PROXIES[ForwardHeader.XFCC],
    )
    engine, _ = engine_for(pki.trust_bundle, cert_only_policy, proxies=proxies, crl_files=[pki.crl])
    return AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())


def _forwarded(header: ForwardHeader, ders: list[bytes], garble: str) -> dict[str, str]:
    pems = "".join(pem_of(d) for d in ders)
    if header is ForwardHeader.XFCC:
        value = f'By=spiffe://test.example/proxy/edge;Cert="{quote(pems, safe="")}";URI=x{garble}'
        return {"x-forwarded-client-cert": value}
    if header is ForwardHeader.X_CLIENT_CERT:
        return {"x-client-cert": quote(pems, safe="") + garble}
    items = [f":{base64.b64encode(d).decode()}:" for d in ders]
    return {"client-cert": items[0] + garble, "client-cert-chain": ", ".join(items[1:])}


@FUZZ
@given(data=st.data())
async def test_checks_over_edited_certificates_get_a_certificate_reason(
    pki: PkiSet,
    proxied_service: AuthorizationService,
    issued_ders: frozenset[bytes],
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    leaf = data.draw(st.sampled_from([pki.alice, pki.bob, pki.no_client_eku]), label="leaf")
    der = der_of(leaf)
    if data.draw(st.integers(0, 2), label="edit") == 2:
        der = data.draw(_edited(der), label="der")
    was_resigned = data.draw(st.integers(0, 2), label="resign") == 2
    if was_resigned:
        tbs = data.draw(_edited(leaf.cert.tbs_certificate_bytes), label="tbs")
        der = resigned(tbs, pki.client_ca)
    chain = [der, der_of(pki.client_ca)][: data.draw(st.integers(1, 2), label="chain")]
    via = data.draw(st.sampled_from([None, *ForwardHeader]), label="via")
    garble = data.draw(
        st.sampled_from(["", "", "", "", "", '"', ";", ",", "%", ":", "=="]), label="garble"
    )
    spec = RequestSpec.golden("")
    if via is None:
        spec.certificate = quote("".join(pem_of(d) for d in chain), safe="") + garble
    else:
        spec.source_address = _SOURCES[via]
        spec.headers.update(_forwarded(via, chain, garble))
    caplog.clear()
    request = spec.to_proto()
    with caplog.at_level(logging.ERROR, logger="admitd.extauthz.service"):
        response = await bounded_async(lambda: proxied_service.Check(request, Mock()), "Check")
    assert not [r for r in caplog.records if r.getMessage() == FAIL_CLOSED_LOG]
    outcome = outcome_of(response)
    assert outcome.reason in _CERTIFICATE_REASONS, outcome
    event(f"{via}: {outcome.reason}")
    if outcome.allowed and not was_resigned:
        # Byte edits without the CA's key: only the certificate exactly as issued is admitted.
        assert der in issued_ders, f"an altered certificate was admitted via {via}"


async def test_a_signature_with_unused_bits_is_not_a_second_spelling_of_a_certificate(
    pki: PkiSet, tmp_path: Path, cert_only_policy: Path
) -> None:
    """alice's certificate, re-signed until the signature's last octet is even, with its
    signatureValue BIT STRING's unused-bits octet changed from 0 to 1: one byte of DER.
    cryptography parses and verifies it as alice's; OpenSSL and BoringSSL refuse it
    (X509_R_INVALID_BIT_STRING_BITS_LEFT). Its SHA-256 differs, so a `sha256:` deny-list
    entry for alice's certificate did not stop it: the Check admitted it. Fixed: refused as
    malformed (495), like any certificate whose DER does not decode."""
    tbs = pki.alice.cert.tbs_certificate_bytes
    original = next(b for b in (resigned(tbs, pki.client_ca) for _ in range(64)) if b[-1] % 2 == 0)
    size = x509.load_der_x509_certificate(original).signature
    at = signature_bits_at(original, len(size))
    twin = original[:at] + b"\x01" + original[at + 1 :]
    deny = tmp_path / "deny.txt"
    deny.write_text(f"sha256:{hashlib.sha256(original).hexdigest()}\n")
    engine, _ = engine_for(pki.trust_bundle, cert_only_policy, deny_list=deny, crl_files=[pki.crl])
    service = AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())
    denied = await service.Check(
        RequestSpec.golden(quote(pem_of(original), safe="")).to_proto(), Mock()
    )
    assert outcome_of(denied).reason == "revoked"  # the deny list works on the original
    response = await service.Check(
        RequestSpec.golden(quote(pem_of(twin), safe="")).to_proto(), Mock()
    )
    assert outcome_of(response).reason == "malformed", (
        "a one-byte re-spelling of a denied certificate was not refused as malformed"
    )
