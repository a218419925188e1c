"""AES-256-GCM envelope encryption of sensitive records: `Sealer.seal` / `Sealer.open`."""

from __future__ import annotations

from admitd.envelope.cache import DekCache
from admitd.envelope.context import ALIAS_FOR_RECORD_TYPE, Context, RecordType
from admitd.envelope.errors import (
    ContextMismatch,
    EnvelopeError,
    MalformedEnvelope,
    TamperedEnvelope,
    TruncatedEnvelope,
    UnknownEnvelopeVersion,
)
from admitd.envelope.format import (
    FORMAT_VERSION,
    Envelope,
    bytes_from_envelope,
    envelope_from_bytes,
    envelope_from_json,
    is_envelope_json,
    json_from_envelope,
)
from admitd.envelope.rewrap import rewrap_envelope
from admitd.envelope.sealer import Sealer
from admitd.kms.errors import (
    AliasNotFound,
    KeyNotFound,
    KeyVersionNotFound,
    KmsError,
    WrongKey,
)

__all__ = [
    "ALIAS_FOR_RECORD_TYPE",
    "FORMAT_VERSION",
    "AliasNotFound",
    "Context",
    "ContextMismatch",
    "DekCache",
    "Envelope",
    "EnvelopeError",
    "KeyNotFound",
    "KeyVersionNotFound",
    "KmsError",
    "MalformedEnvelope",
    "RecordType",
    "Sealer",
    "TamperedEnvelope",
    "TruncatedEnvelope",
    "UnknownEnvelopeVersion",
    "WrongKey",
    "bytes_from_envelope",
    "envelope_from_bytes",
    "envelope_from_json",
    "is_envelope_json",
    "json_from_envelope",
    "rewrap_envelope",
]
