"""Known-answer and parsing tests for envelope format version 1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from admitd.envelope import (
    Context,
    Envelope,
    MalformedEnvelope,
    RecordType,
    Sealer,
    TruncatedEnvelope,
    UnknownEnvelopeVersion,
    bytes_from_envelope,
    envelope_from_bytes,
    envelope_from_json,
    is_envelope_json,
    json_from_envelope,
)
from admitd.kms.base import KeyState
from admitd.kms.keyring import KeyEntry, Keyring, KeyringKms

MASTER_V1, MASTER_V2 = bytes([0x10]) * 32, bytes([0x11]) * 32
DEK, NONCE, WRAP_NONCE = bytes([0x22]) * 32, bytes([0x33]) * 12, bytes([0x44]) * 12
CONTEXT = Context(RecordType.TOTP_SECRET, "user-42", "acme")
PLAINTEXT = b"JBSWY3DPEHPK3PXP"

KAT_BINARY = bytes.fromhex(
    "41444d4501136b6d732f73657373696f6e2d7365637265747300000002003c444444444444444444444444"
    "ee676a4c681a0615cbb2bdbf0ac855cebae8ee199a2f1df5f571c3411ee908fe4b9961d3175dfb8504c60e"
    "3a22aaf54a333333333333333333333333dfc5547ed1e2b00ea591adfa40ddc47b000000203c8195bd2c1f"
    "32384da5cb3b268155c25272059fc6210f67afba481f25e518d0"
)
KAT_JSON = (
    '{"admitd_envelope":1,"alias":"kms/session-secrets","key_version":2,'
    '"wrapped_dek":"RERERERERERERERE7mdqTGgaBhXLsr2/CshVzrro7hmaLx319XHDQR7pCP5LmWHTF137hQTGDjoiqvVK",'
    '"nonce":"MzMzMzMzMzMzMzMz","context_check":"38VUftHisA6lka36QN3Eew==",'
    '"ciphertext":"PIGVvSwfMjhNpcs7JoFVwlJyBZ/GIQ9nr7pIHyXlGNA="}'
)


def fixed(*chunks: bytes) -> Callable[[int], bytes]:
    """A randbytes stand-in handing out `chunks` in order (the test seam)."""
    pending = list(chunks)

    def randbytes(size: int) -> bytes:
        chunk = pending.pop(0)
        assert len(chunk) == size
        return chunk

    return randbytes


def kat_sealer() -> Sealer:
    versions = (
        KeyEntry(1, KeyState.DECRYPT_ONLY, "", MASTER_V1),
        KeyEntry(2, KeyState.ACTIVE, "", MASTER_V2),
    )
    ring = Keyring(MappingProxyType({"kms/session-secrets": versions}))
    kms = KeyringKms(ring, randbytes=fixed(WRAP_NONCE))
    return Sealer(kms, randbytes=fixed(DEK, NONCE))


async def test_known_answer_binary() -> None:
    assert bytes_from_envelope(await kat_sealer().seal(PLAINTEXT, CONTEXT)) == KAT_BINARY


async def test_known_answer_json() -> None:
    assert json_from_envelope(await kat_sealer().seal(PLAINTEXT, CONTEXT)) == KAT_JSON


async def test_known_answer_opens() -> None:
    assert await kat_sealer().open(envelope_from_bytes(KAT_BINARY), CONTEXT) == PLAINTEXT


def test_known_answer_matches_the_documented_construction() -> None:
    # Recomputes every field from docs/envelope.md with bare primitives.
    alias = b"kms/session-secrets"
    wrap_aad = b"admitd/kms/dek-wrap/v1\x00" + alias + b"\x00" + (2).to_bytes(4, "big")
    wrapped = WRAP_NONCE + AESGCM(MASTER_V2).encrypt(WRAP_NONCE, DEK, wrap_aad)
    fields = [alias, b"totp-secret", b"user-42", b"acme"]
    aad = b"admitd/envelope/v1\x00" + b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    check_key = hmac.new(DEK, b"admitd/envelope/v1/context-check\x01", hashlib.sha256).digest()
    check = hmac.new(check_key, aad, hashlib.sha256).digest()[:16]
    ciphertext = AESGCM(DEK).encrypt(NONCE, PLAINTEXT, aad)
    expected = Envelope("kms/session-secrets", 2, wrapped, NONCE, check, ciphertext)
    assert bytes_from_envelope(expected) == KAT_BINARY


def test_binary_and_json_forms_round_trip() -> None:
    envelope = envelope_from_bytes(KAT_BINARY)
    assert envelope_from_json(json_from_envelope(envelope)) == envelope
    assert envelope_from_json(KAT_JSON.encode()) == envelope


@pytest.mark.parametrize("cut", range(len(KAT_BINARY)), ids=lambda n: f"len{n}")
def test_every_truncation_of_the_binary_form_is_typed(cut: int) -> None:
    with pytest.raises(TruncatedEnvelope):
        envelope_from_bytes(KAT_BINARY[:cut])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(MalformedEnvelope, match="trailing"):
        envelope_from_bytes(KAT_BINARY + b"\x00")


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_binary_version(version: int) -> None:
    data = KAT_BINARY[:4] + bytes([version]) + KAT_BINARY[5:]
    with pytest.raises(UnknownEnvelopeVersion):
        envelope_from_bytes(data)


def test_bad_magic() -> None:
    with pytest.raises(MalformedEnvelope, match="magic"):
        envelope_from_bytes(b"XXXX" + KAT_BINARY[4:])


@pytest.mark.parametrize("version", [0, 2, "1", True])
def test_unknown_json_version(version: object) -> None:
    doc = json.loads(KAT_JSON)
    doc["admitd_envelope"] = version
    with pytest.raises(UnknownEnvelopeVersion):
        envelope_from_json(json.dumps(doc))


def test_truncated_json() -> None:
    with pytest.raises(TruncatedEnvelope):
        envelope_from_json(KAT_JSON[:-10])


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"key_version": "2"},
        {"key_version": 0},
        {"alias": "Not An Alias"},
        {"nonce": "not base64!"},
        {"nonce": base64.b64encode(b"short").decode()},
        {"ciphertext": base64.b64encode(b"short").decode()},
        {"wrapped_dek": ""},
    ],
    ids=lambda c: next(iter(c)),
)
def test_malformed_json_fields(change: dict[str, object]) -> None:
    doc = json.loads(KAT_JSON) | change
    with pytest.raises(MalformedEnvelope):
        envelope_from_json(json.dumps(doc))


@pytest.mark.parametrize("text", ["[]", '{"a": 1}', "nul", b"\xff\xfe"], ids=repr)
def test_not_an_envelope(text: str | bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        envelope_from_json(text)


def test_is_envelope_json() -> None:
    assert is_envelope_json(KAT_JSON)
    assert is_envelope_json(b"  " + KAT_JSON.encode())
    assert not is_envelope_json(b"plain value")
    assert not is_envelope_json(b'["admitd_envelope"]')


def test_repr_shows_no_key_material() -> None:
    text = repr(envelope_from_bytes(KAT_BINARY))
    assert text == "Envelope(alias='kms/session-secrets', key_version=2)"
