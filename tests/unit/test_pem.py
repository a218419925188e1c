from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from admitd.certs.pem import CertificateParseError, certificates_from_der, certificates_from_pem
from admitd.certs.rfc9440 import Rfc9440Error, der_from_client_cert, ders_from_client_cert_chain
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
