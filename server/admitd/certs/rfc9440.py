"""Parse the RFC 9440 `Client-Cert` and `Client-Cert-Chain` headers.

Both are HTTP structured fields (RFC 8941): `Client-Cert` is one byte sequence
(`:base64-DER:`), `Client-Cert-Chain` a list of byte sequences.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["Rfc9440Error", "der_from_client_cert", "ders_from_client_cert_chain"]


class Rfc9440Error(ValueError):
    """The header is not a structured-field byte sequence (list), or lists too many."""

    def __init__(self, message: str, *, too_long: bool = False) -> None:
        super().__init__(message)
        self.too_long = too_long


def der_from_client_cert(header: str) -> bytes:
    """The DER bytes of a `Client-Cert` header value."""
    return _byte_sequence(header.strip())


def ders_from_client_cert_chain(header: str, *, max_count: int) -> list[bytes]:
    """The DER bytes of each certificate in a `Client-Cert-Chain` header value."""
    members = [member.strip() for member in header.split(",")]
    if len(members) > max_count:
        raise Rfc9440Error(
            f"{len(members)} certificates, at most {max_count} allowed", too_long=True
        )
    return [_byte_sequence(member) for member in members if member]


def _byte_sequence(item: str) -> bytes:
    # Parameters (";key=value") are allowed after an item by RFC 8941; ignore them.
    item = item.split(";", 1)[0].strip()
    if len(item) < 2 or item[0] != ":" or item[-1] != ":":
        raise Rfc9440Error("not a structured-field byte sequence (:base64:)")
    try:
        return base64.b64decode(item[1:-1], validate=True)
    except (binascii.Error, ValueError):
        raise Rfc9440Error("invalid base64 in byte sequence") from None
