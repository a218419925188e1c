"""Just enough DER to edit certificates: TLV encoding, re-signing, the signature BIT STRING."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from admitd.pki import Issued

__all__ = ["der_of", "pem_of", "resigned", "signature_bits_at", "tlv"]

_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")


def der_of(issued: Issued) -> bytes:
    return issued.cert.public_bytes(Encoding.DER)


def pem_of(blob: bytes) -> str:
    body = base64.encodebytes(blob).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"


def tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def resigned(tbs: bytes, issuer: Issued) -> bytes:
    """A certificate around `tbs`, signed by `issuer` (ECDSA P-256, SHA-256): an edited
    TBSCertificate gets past the signature check, into every decoder behind it."""
    signature = issuer.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + _ECDSA_SHA256 + tlv(0x03, b"\x00" + signature))


def signature_bits_at(blob: bytes, signature_size: int) -> int:
    """Offset of the unused-bits octet of the signatureValue BIT STRING (the last element)."""
    return len(blob) - signature_size - 1
