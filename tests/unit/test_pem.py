from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from admitd.certs.pem import CertificateParseError, certificates_from_der, certificates_from_pem
from admitd.certs.rfc9440 import Rfc9440Error, der_from_client_cert, ders_from_client_cert_chain
from admitd.pki import Issued
from tests.fuzz.der import resigned, signature_bits_at
from tests.pki_fixtures import PkiSet, pem, url_pem


def test_url_encoded_chain_parses_leaf_first(pki: PkiSet) -> None:
    certs = certificates_from_pem(url_pem(pki.alice, pki.client_ca), max_count=8)
    assert [c.subject for c in certs] == [pki.alice.cert.subject, pki.client_ca.cert.subject]


def test_chain_of_fifty_is_refused_before_parsing(pki: PkiSet) -> None:
    with pytest.raises(CertificateParseError) as info:
        certificates_from_pem(pem(pki.alice) * 50, max_count=8, url_encoded=False)
    assert info.value.too_long


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("not a certificate", id="garbage"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", id="bad-der"
        ),
        pytest.param("-----BEGIN CERTIFICATE-----\nMIIB", id="truncated"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\n\u00e9\n-----END CERTIFICATE-----", id="non-ascii"
        ),
    ],
)
def test_malformed_pem_is_a_parse_error(text: str) -> None:
    with pytest.raises(CertificateParseError):
        certificates_from_pem(text, max_count=8)


@given(st.text(max_size=300))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    with contextlib.suppress(CertificateParseError):
        certificates_from_pem(text, max_count=8)


@given(st.binary(max_size=300))
def test_arbitrary_der_never_escapes_as_another_error(blob: bytes) -> None:
    with contextlib.suppress(CertificateParseError):
        certificates_from_der([blob], max_count=8)


def test_rfc9440_headers(pki: PkiSet) -> None:
    der_leaf = pki.alice.cert.public_bytes(Encoding.DER)
    der_ca = pki.client_ca.cert.public_bytes(Encoding.DER)
    b64 = lambda d: base64.b64encode(d).decode()  # noqa: E731
    assert der_from_client_cert(f":{b64(der_leaf)}:") == der_leaf
    assert ders_from_client_cert_chain(f":{b64(der_ca)}:, :{b64(der_leaf)}:;p=1", max_count=4) == [
        der_ca,
        der_leaf,
    ]
    for bad in ("abc", ":not base64!:", "::x"):
        with pytest.raises(Rfc9440Error):
            der_from_client_cert(bad)


def _with_unused_signature_bits(issued: Issued, signer: Issued) -> bytes:
    """`issued`'s certificate re-signed by `signer` until the signature's last octet is even,
    then its signatureValue BIT STRING's unused-bits octet set from 0 to 1 (the padding bit
    is zero): `cryptography` parses and verifies this as the original, OpenSSL refuses it."""
    tbs = issued.cert.tbs_certificate_bytes
    der = next(b for b in (resigned(tbs, signer) for _ in range(64)) if b[-1] % 2 == 0)
    at = signature_bits_at(der, len(x509.load_der_x509_certificate(der).signature))
    assert der[at] == 0
    return der[:at] + b"\x01" + der[at + 1 :]


@pytest.mark.parametrize("form", ["der", "pem"])
def test_a_signature_with_unused_bits_is_a_parse_error(pki: PkiSet, form: str) -> None:
    """One certificate, a second DER (and SHA-256): refused, so a `sha256:` deny-list entry
    cannot be stepped around by re-spelling the signature."""
    twin = _with_unused_signature_bits(pki.alice, pki.client_ca)
    x509.load_der_x509_certificate(twin)  # cryptography alone accepts it
    with pytest.raises(CertificateParseError, match="unused bits"):
        if form == "der":
            certificates_from_der([twin], max_count=8)
        else:
            certificates_from_pem(_pem_of(twin), max_count=8, url_encoded=False)


@pytest.mark.parametrize("form", ["der", "pem"])
def test_a_chain_member_with_unused_signature_bits_is_a_parse_error(pki: PkiSet, form: str) -> None:
    ca_twin = _with_unused_signature_bits(pki.client_ca, pki.root)
    leaf = pki.alice.cert.public_bytes(Encoding.DER)
    with pytest.raises(CertificateParseError, match="unused bits"):
        if form == "der":
            certificates_from_der([leaf, ca_twin], max_count=8)
        else:
            text = _pem_of(leaf) + _pem_of(ca_twin)
            certificates_from_pem(text, max_count=8, url_encoded=False)


def test_certificates_as_issued_still_parse(pki: PkiSet) -> None:
    ders = [i.cert.public_bytes(Encoding.DER) for i in (pki.alice, pki.client_ca, pki.root)]
    assert [c.public_bytes(Encoding.DER) for c in certificates_from_der(ders, max_count=8)] == ders


def _pem_of(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"
