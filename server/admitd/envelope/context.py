"""The record context bound to every envelope as AES-GCM associated data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from admitd.kms.base import ALIAS_AUDIT_LOG, ALIAS_DEVICE_TELEMETRY, ALIAS_SESSION_SECRETS

__all__ = ["ALIAS_FOR_RECORD_TYPE", "Context", "RecordType", "associated_data"]


class RecordType(StrEnum):
    """The sensitive-record classes of the security policy."""

    TOTP_SECRET = "totp-secret"  # noqa: S105 - a record type name, not a secret
    PASSKEY_CREDENTIAL = "passkey-credential"
    DEVICE_TELEMETRY = "device-telemetry"
    AUDIT_ENTRY = "audit-entry"


ALIAS_FOR_RECORD_TYPE: Mapping[RecordType, str] = MappingProxyType(
    {
        RecordType.TOTP_SECRET: ALIAS_SESSION_SECRETS,
        RecordType.PASSKEY_CREDENTIAL: ALIAS_SESSION_SECRETS,
        RecordType.DEVICE_TELEMETRY: ALIAS_DEVICE_TELEMETRY,
        RecordType.AUDIT_ENTRY: ALIAS_AUDIT_LOG,
    }
)

_AAD_LABEL = b"admitd/envelope/v1\x00"


@dataclass(frozen=True, slots=True)
class Context:
    """Which record an envelope belongs to; opening under any other context fails.

    `extra` holds further (name, value) pairs to bind, e.g. ("user", "u-42");
    their order does not matter.
    """

    record_type: RecordType
    record_id: str
    organisation: str
    extra: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.record_id:
            raise ValueError("a record context needs a record_id")
        names = [name for name, _ in self.extra]
        if len(set(names)) != len(names):
            raise ValueError("context extra names must be unique")


def associated_data(alias: str, context: Context) -> bytes:
    """Canonical AEAD associated data: label, then length-prefixed UTF-8 fields.

    Length prefixes (4 bytes, big-endian) make the encoding injective, so
    ("ab", "c") and ("a", "bc") can never collide.
    """
    fields = [alias, context.record_type.value, context.record_id, context.organisation]
    for name, value in sorted(context.extra):
        fields += [name, value]
    encoded = (f.encode() for f in fields)
    return _AAD_LABEL + b"".join(len(e).to_bytes(4, "big") + e for e in encoded)
