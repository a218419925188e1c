"""Envelope format version 1: a binary form and a JSON/base64 form for Redis.

Binary (all integers big-endian), documented in docs/envelope.md:

    magic "ADME" | version u8 (=1) | alias_len u8 | alias (UTF-8)
    | key_version u32 | wrapped_dek_len u16 | wrapped_dek
    | nonce (12) | context_check (16) | ciphertext_len u32 | ciphertext || tag (16)

JSON: {"admitd_envelope": 1, "alias", "key_version", "wrapped_dek", "nonce",
"context_check", "ciphertext"}, byte fields in standard padded base64.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from admitd.envelope.errors import MalformedEnvelope, TruncatedEnvelope, UnknownEnvelopeVersion
from admitd.kms.base import is_valid_alias

__all__ = [
    "FORMAT_VERSION",
    "JSON_MARKER",
    "MAGIC",
    "Envelope",
    "bytes_from_envelope",
    "envelope_from_bytes",
    "envelope_from_json",
    "is_envelope_json",
    "json_from_envelope",
]

MAGIC = b"ADME"
FORMAT_VERSION = 1
NONCE_BYTES = 12
CHECK_BYTES = 16
TAG_BYTES = 16
JSON_MARKER = "admitd_envelope"
_JSON_FIELDS = (
    JSON_MARKER,
    "alias",
    "key_version",
    "wrapped_dek",
    "nonce",
    "context_check",
    "ciphertext",
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One sealed record; every field is public (the DEK inside is wrapped)."""

    alias: str
    key_version: int
    wrapped_dek: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    context_check: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)  # AES-GCM ciphertext with its 16-byte tag

    def __post_init__(self) -> None:
        if not is_valid_alias(self.alias):
            raise MalformedEnvelope("envelope alias is not a valid key alias")
        if not 0 < self.key_version < 2**32:
            raise MalformedEnvelope("envelope key version out of range")
        if not 0 < len(self.wrapped_dek) < 2**16:
            raise MalformedEnvelope("envelope wrapped DEK length out of range")
        if len(self.nonce) != NONCE_BYTES or len(self.context_check) != CHECK_BYTES:
            raise MalformedEnvelope("envelope nonce or context check has the wrong length")
        if not TAG_BYTES <= len(self.ciphertext) < 2**32:
            raise MalformedEnvelope("envelope ciphertext is shorter than its tag")


def bytes_from_envelope(envelope: Envelope) -> bytes:
    """The binary form of `envelope` (format version 1)."""
    alias = envelope.alias.encode()
    return b"".join(
        (
            MAGIC,
            bytes((FORMAT_VERSION, len(alias))),
            alias,
            envelope.key_version.to_bytes(4, "big"),
            len(envelope.wrapped_dek).to_bytes(2, "big"),
            envelope.wrapped_dek,
            envelope.nonce,
            envelope.context_check,
            len(envelope.ciphertext).to_bytes(4, "big"),
            envelope.ciphertext,
        )
    )


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise TruncatedEnvelope("envelope is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")


def envelope_from_bytes(data: bytes) -> Envelope:
    """Parse the binary form; `MalformedEnvelope` / `UnknownEnvelopeVersion` on failure."""
    reader = _Reader(bytes(data))
    if reader.take(len(MAGIC)) != MAGIC:
        raise MalformedEnvelope("not an admitd envelope (bad magic)")
    version = reader.number(1)
    if version != FORMAT_VERSION:
        raise UnknownEnvelopeVersion(f"envelope format version {version} is not supported")
    try:
        alias = reader.take(reader.number(1)).decode()
    except UnicodeDecodeError:
        raise MalformedEnvelope("envelope alias is not UTF-8") from None
    key_version = reader.number(4)
    wrapped_dek = reader.take(reader.number(2))
    nonce, check = reader.take(NONCE_BYTES), reader.take(CHECK_BYTES)
    ciphertext = reader.take(reader.number(4))
    if reader.pos != len(reader.data):
        raise MalformedEnvelope("trailing bytes after the envelope")
    return Envelope(alias, key_version, wrapped_dek, nonce, check, ciphertext)


def json_from_envelope(envelope: Envelope) -> str:
    """The JSON form, compact, marker first (what Redis values hold)."""
    b64 = base64.b64encode
    doc = {
        JSON_MARKER: FORMAT_VERSION,
        "alias": envelope.alias,
        "key_version": envelope.key_version,
        "wrapped_dek": b64(envelope.wrapped_dek).decode(),
        "nonce": b64(envelope.nonce).decode(),
        "context_check": b64(envelope.context_check).decode(),
        "ciphertext": b64(envelope.ciphertext).decode(),
    }
    return json.dumps(doc, separators=(",", ":"))


def is_envelope_json(value: bytes | str) -> bool:
    """Cheap test whether a stored value claims to be a JSON envelope (may still be malformed)."""
    raw = value.encode() if isinstance(value, str) else value
    return raw.lstrip()[:1] == b"{" and f'"{JSON_MARKER}"'.encode() in raw


def envelope_from_json(text: str | bytes) -> Envelope:
    """Parse the JSON form; `MalformedEnvelope` / `UnknownEnvelopeVersion` on failure."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # Input that stops inside a string or before the closing brace was cut short.
        cut = exc.msg.startswith("Unterminated") or exc.pos >= len(exc.doc.rstrip())
        error = TruncatedEnvelope if cut else MalformedEnvelope
        raise error("envelope JSON is invalid") from None
    except (UnicodeDecodeError, ValueError):
        raise MalformedEnvelope("envelope JSON is not UTF-8") from None
    if not isinstance(doc, dict) or JSON_MARKER not in doc:
        raise MalformedEnvelope("not an admitd envelope (no marker field)")
    if doc[JSON_MARKER] != FORMAT_VERSION or isinstance(doc[JSON_MARKER], bool):
        raise UnknownEnvelopeVersion("envelope format version is not supported")
    if set(doc) != set(_JSON_FIELDS):
        raise MalformedEnvelope("envelope JSON has missing or unknown fields")
    alias, key_version = doc["alias"], doc["key_version"]
    if not isinstance(alias, str) or type(key_version) is not int:
        raise MalformedEnvelope("envelope alias or key_version has the wrong type")
    return Envelope(
        alias,
        key_version,
        _b64(doc["wrapped_dek"]),
        _b64(doc["nonce"]),
        _b64(doc["context_check"]),
        _b64(doc["ciphertext"]),
    )


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise MalformedEnvelope("envelope byte field is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEnvelope("envelope byte field is not valid base64") from None
