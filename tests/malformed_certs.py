"""Client certificates that are signed by a trusted CA yet malformed: DER edited, then re-signed.

`cryptography` refuses to build such certificates, so the TBSCertificate of a valid
one is edited byte-wise and signed again with the issuing CA's key.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from admitd.pki import Issued, issue_leaf

__all__ = [
    "MALFORMED_KINDS",
    "malformed_leaf_der",
    "malformed_leaf_pem",
    "resigned_with_edit",
    "signature_twin",
]

_OID_A = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")
_OID_B = x509.ObjectIdentifier("1.3.6.1.4.1.55555.2")
_BAD_TAG_CN = "reserved-tag-subject"
MALFORMED_KINDS = ("reserved-tag-subject", "bad-version", "duplicate-extension")


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _length(len(body)) + body


def _children(der: bytes) -> list[bytes]:
    """The encoded children of the outer SEQUENCE of `der`."""
    offset = 1
    first = der[offset]
    offset += 1 + (first & 0x7F if first & 0x80 else 0)
    children = []
    while offset < len(der):
        start = offset
        offset += 1
        first = der[offset]
        if first & 0x80:
            count = first & 0x7F
            size = int.from_bytes(der[offset + 1 : offset + 1 + count], "big")
            offset += 1 + count
        else:
            size = first
            offset += 1
        offset += size
        children.append(der[start:offset])
    return children


def _resigned(leaf: Issued, issuer: Issued, edit: tuple[bytes, bytes]) -> bytes:
    tbs, algorithm, _ = _children(leaf.cert.public_bytes(Encoding.DER))
    old, new = edit
    assert tbs.count(old) == 1, "the edit must hit exactly one place"
    return _signed(tbs.replace(old, new), algorithm, issuer)


def _signed(tbs: bytes, algorithm: bytes, issuer: Issued) -> bytes:
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def resigned_with_edit(leaf: Issued, issuer: Issued, position: int, replacement: bytes) -> str:
    """PEM of `leaf` with bytes of its TBSCertificate overwritten at `position`, re-signed."""
    tbs, algorithm, _ = _children(leaf.cert.public_bytes(Encoding.DER))
    edited = tbs[:position] + replacement + tbs[position + len(replacement) :]
    return _pem(_signed(edited, algorithm, issuer))


def signature_twin(leaf: Issued, issuer: Issued) -> x509.Certificate:
    """The same certificate (identical tbsCertificate) with another valid signature.

    ECDSA signatures are not unique: anyone holding the certificate can turn (r, s)
    into (r, n - s) without the CA's key. Re-signing gets the same result here.
    """
    tbs, algorithm, _ = _children(leaf.cert.public_bytes(Encoding.DER))
    return x509.load_der_x509_certificate(_signed(tbs, algorithm, issuer))


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def malformed_leaf_der(kind: str, issuer: Issued) -> bytes:
    """A leaf signed by `issuer` whose DER `cryptography` cannot fully decode."""
    uri = ("spiffe://test.example/user/malformed",)
    if kind == "reserved-tag-subject":
        leaf = issue_leaf(issuer, _BAD_TAG_CN, uris=uri)
        value = _BAD_TAG_CN.encode()
        # UTF8String (12) -> universal tag 15, which X.680 reserves.
        return _resigned(leaf, issuer, (_tlv(0x0C, value), _tlv(0x0F, value)))
    if kind == "bad-version":
        leaf = issue_leaf(issuer, "bad-version", uris=uri)
        # version [0] EXPLICIT INTEGER: v3 is 2; RFC 5280 defines nothing above it.
        return _resigned(leaf, issuer, (b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x07"))
    if kind == "duplicate-extension":
        leaf = _leaf_with_extensions(issuer, uri)
        oid_a, oid_b = (_oid_der(oid) for oid in (_OID_A, _OID_B))
        return _resigned(leaf, issuer, (oid_b, oid_a))
    raise ValueError(f"unknown kind {kind!r}")


def malformed_leaf_pem(kind: str, issuer: Issued) -> str:
    return _pem(malformed_leaf_der(kind, issuer))


def _oid_der(oid: x509.ObjectIdentifier) -> bytes:
    return _tlv(0x06, _oid_body(oid.dotted_string))


def _oid_body(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        rest = part >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return body


def _leaf_with_extensions(issuer: Issued, uris: tuple[str, ...]) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC) - timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=duplicate-extension,O=admitd dev"))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .add_extension(x509.UnrecognizedExtension(_OID_A, b"\x05\x00"), critical=False)
        .add_extension(x509.UnrecognizedExtension(_OID_B, b"\x05\x00"), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)
