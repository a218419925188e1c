"""Signed checkpoints of the chain head (Ed25519), so a deleted tail is detectable too."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import cast

import redis.asyncio as redis
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from admitd.audit.entry import canonical_bytes_from_mapping, rfc3339

__all__ = [
    "Checkpoint",
    "checkpoint_from_fields",
    "key_id",
    "sign_checkpoint",
    "verify_checkpoint",
    "write_checkpoint",
]

logger = logging.getLogger("admitd.audit")

_LABEL = b"admitd-audit-checkpoint-v1\x00"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the chain in `stream` had `seq` entries ending in `hash` at `time`."""

    stream: str
    seq: int
    hash: str  # hex
    time: str  # RFC 3339
    instance: str
    key_id: str
    signature: bytes

    def signed_fields(self) -> dict[str, str]:
        return {
            "stream": self.stream,
            "seq": str(self.seq),
            "hash": self.hash,
            "time": self.time,
            "instance": self.instance,
            "key_id": self.key_id,
        }

    def fields(self) -> dict[str, str]:
        return {**self.signed_fields(), "sig": base64.b64encode(self.signature).decode()}


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _message(fields: Mapping[str, str]) -> bytes:
    return _LABEL + canonical_bytes_from_mapping(dict(fields))


def sign_checkpoint(
    key: Ed25519PrivateKey, *, stream: str, seq: int, hash_hex: str, now: float, instance: str
) -> Checkpoint:
    unsigned = Checkpoint(
        stream, seq, hash_hex, rfc3339(now), instance, key_id(key.public_key()), b""
    )
    return replace(unsigned, signature=key.sign(_message(unsigned.signed_fields())))


def verify_checkpoint(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    try:
        public_key.verify(checkpoint.signature, _message(checkpoint.signed_fields()))
    except (InvalidSignature, UnicodeEncodeError):  # a lone surrogate was never signed
        return False
    return True


def _is_utf8_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checkpoint_from_fields(fields: Mapping[str, str]) -> Checkpoint:
    """Parse a stored or exported checkpoint; ValueError names the bad field.

    A field that is not Unicode text (a lone surrogate from an export's "\\ud800") has no
    UTF-8, so it cannot be what was signed: refused here, before `_message` encodes it.
    """
    for name, value in fields.items():
        if not _is_utf8_text(value):
            raise ValueError(f"checkpoint field {name!r} is not UTF-8 text")
    try:
        return Checkpoint(
            stream=fields["stream"],
            seq=int(fields["seq"]),
            hash=fields["hash"],
            time=fields["time"],
            instance=fields["instance"],
            key_id=fields["key_id"],
            signature=_canonical_base64(fields["sig"]),
        )
    except KeyError as exc:
        raise ValueError(f"checkpoint lacks field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ValueError(f"checkpoint field unreadable: {exc}") from None


def _canonical_base64(text: str) -> bytes:
    """The signature's bytes, from the one base64 text admitd writes for them: another
    spelling of the same bytes (unused low bits set in the last character) is not what
    admitd wrote, so a checkpoint carrying one does not verify."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("sig is not canonical base64")
    return raw


async def write_checkpoint(
    client: redis.Redis, key: Ed25519PrivateKey, *, stream: str, instance: str, now: float
) -> Checkpoint | None:
    """Sign the current head unless the newest checkpoint already covers it (another replica)."""
    tail = cast(list[tuple[str, dict[str, str]]], await client.xrevrange(stream, count=1))
    if not tail or "seq" not in tail[0][1] or "hash" not in tail[0][1]:
        return None
    seq, hash_hex = int(tail[0][1]["seq"]), tail[0][1]["hash"]
    last = cast(
        list[tuple[str, dict[str, str]]],
        await client.xrevrange(f"{stream}:checkpoints", count=1),
    )
    if last and last[0][1].get("seq") == str(seq):
        return None
    checkpoint = sign_checkpoint(
        key, stream=stream, seq=seq, hash_hex=hash_hex, now=now, instance=instance
    )
    await client.xadd(f"{stream}:checkpoints", dict(checkpoint.fields()))  # type: ignore[arg-type]
    # Also in the server log, which ships elsewhere: deleting the checkpoints
    # stream then still leaves a record of how long the chain was.
    logger.info(
        "%s", json.dumps({"event": "audit.checkpoint", **checkpoint.fields()}, sort_keys=True)
    )
    return checkpoint
