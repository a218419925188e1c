"""The outer DER of a certificate: three elements, the signature a whole number of octets.

RFC 5280 4.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
signatureValue BIT STRING }. The signature covers only the first element, so the last
two can be re-spelled without the CA's key. `cryptography` accepts a signatureValue whose
BIT STRING declares 1-7 unused (zero) bits and verifies it as the original: the same
certificate with a second DER and so a second SHA-256 fingerprint, which slips past a
`sha256:` deny-list entry. OpenSSL and BoringSSL refuse it
(X509_R_INVALID_BIT_STRING_BITS_LEFT), and so does admitd: a signature is octets, and its
unused-bits octet must be 0. Only the outer SEQUENCE and its three elements' headers are
decoded here; `cryptography` has already parsed the rest.
"""

from __future__ import annotations

__all__ = ["outer_der_problem"]

_SEQUENCE, _BIT_STRING = 0x30, 0x03
_MAX_LENGTH_OCTETS = 4  # a certificate is far below 4 GiB


class _Malformed(ValueError):
    pass


def outer_der_problem(der: bytes) -> str | None:
    """None when `der` is one Certificate SEQUENCE whose third element is a BIT STRING
    with no unused bits; else what is wrong (the certificate is malformed)."""
    try:
        tag, start, end = _header(der, 0)
        if tag != _SEQUENCE or end != len(der):
            return "not a single DER SEQUENCE"
        elements: list[tuple[int, int, int]] = []  # (tag, content start, content end)
        at = start
        while at < end:
            element = _header(der, at, end)
            elements.append(element)
            at = element[2]
    except _Malformed as exc:
        return f"outer DER unreadable: {exc}"
    if len(elements) != 3 or elements[2][0] != _BIT_STRING:
        return "not tbsCertificate, signatureAlgorithm, signatureValue"
    _, content, content_end = elements[2]
    if content == content_end or der[content] != 0:
        return "the signature BIT STRING declares unused bits"
    return None


def _header(der: bytes, at: int, limit: int | None = None) -> tuple[int, int, int]:
    """(tag, first content octet, end of content) of the element at `at` (X.690 8.1)."""
    limit = len(der) if limit is None else limit
    if at + 2 > limit:
        raise _Malformed("truncated header")
    tag, first = der[at], der[at + 1]
    if tag & 0x1F == 0x1F:
        raise _Malformed("high tag number")  # none in a Certificate's outer structure
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > _MAX_LENGTH_OCTETS or at + count > limit:
            raise _Malformed("bad length")  # 0x80: indefinite, not DER
        octets = der[at : at + count]
        length = int.from_bytes(octets, "big")
        if octets[0] == 0 or length < 0x80:
            raise _Malformed("length not in its shortest form")  # X.690 10.1
        at += count
    if at + length > limit:
        raise _Malformed("length past the end")
    return tag, at, at + length
