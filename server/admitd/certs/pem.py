"""Decode certificates as Envoy and proxies forward them: URL-encoded PEM, or DER.

Every certificate of a chain must also pass `outer_der_problem` (certs/outer_der.py): a
signature BIT STRING with unused bits is a second spelling of a certificate, refused as
malformed like any other DER that does not decode.
"""

from __future__ import annotations

from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from admitd.certs.decoding import CERTIFICATE_ERRORS, strict_decoding
from admitd.certs.outer_der import outer_der_problem

__all__ = ["CertificateParseError", "certificates_from_der", "certificates_from_pem"]

_BEGIN = "-----BEGIN CERTIFICATE-----"


class CertificateParseError(ValueError):
    """The forwarded text is not a certificate (or has more of them than allowed)."""

    def __init__(self, message: str, *, too_long: bool = False) -> None:
        super().__init__(message)
        self.too_long = too_long


def certificates_from_pem(
    text: str, *, max_count: int, url_encoded: bool = True
) -> list[x509.Certificate]:
    """Parse one or more PEM certificates, leaf first.

    Counting the PEM markers before parsing keeps a 50-certificate chain from
    costing 50 parses before it is refused.
    """
    pem = unquote(text) if url_encoded else text
    count = pem.count(_BEGIN)
    if count == 0:
        raise CertificateParseError("no PEM certificate found")
    if count > max_count:
        raise CertificateParseError(
            f"{count} certificates, at most {max_count} allowed", too_long=True
        )
    try:
        with strict_decoding():
            certificates = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except CERTIFICATE_ERRORS as exc:  # UnicodeEncodeError is a ValueError
        raise CertificateParseError(f"unparseable PEM certificate: {exc}") from None
    for certificate in certificates:
        _refuse_respelled(certificate.public_bytes(Encoding.DER), "PEM")
    return certificates


def certificates_from_der(blobs: list[bytes], *, max_count: int) -> list[x509.Certificate]:
    """Parse DER certificates (RFC 9440 headers carry DER in structured-field byte sequences)."""
    if len(blobs) > max_count:
        raise CertificateParseError(
            f"{len(blobs)} certificates, at most {max_count} allowed", too_long=True
        )
    try:
        with strict_decoding():
            certificates = [x509.load_der_x509_certificate(blob) for blob in blobs]
    except CERTIFICATE_ERRORS as exc:
        raise CertificateParseError(f"unparseable DER certificate: {exc}") from None
    for blob in blobs:
        _refuse_respelled(blob, "DER")
    return certificates


def _refuse_respelled(der: bytes, form: str) -> None:
    problem = outer_der_problem(der)
    if problem is not None:
        raise CertificateParseError(f"unparseable {form} certificate: {problem}")
