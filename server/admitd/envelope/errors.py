"""Envelope errors; every one derives from `admitd.errors.EnvelopeError`.

    EnvelopeError                 a sealed record cannot be opened
    ├── MalformedEnvelope         not a well-formed envelope (bad magic, field, JSON)
    │   └── TruncatedEnvelope     the bytes end before the envelope does
    ├── UnknownEnvelopeVersion    a format version this build does not read
    ├── ContextMismatch           sealed for another record (type, ID, organisation)
    └── TamperedEnvelope          the nonce, ciphertext, tag or context check was altered

Key problems (unknown alias or version, wrong key) are `KmsError`s from
`admitd.kms.errors`, re-exported by `admitd.envelope`.
"""

from __future__ import annotations

from admitd.errors import EnvelopeError

__all__ = [
    "ContextMismatch",
    "EnvelopeError",
    "MalformedEnvelope",
    "TamperedEnvelope",
    "TruncatedEnvelope",
    "UnknownEnvelopeVersion",
]


class MalformedEnvelope(EnvelopeError):
    """The bytes or JSON are not an admitd envelope."""


class TruncatedEnvelope(MalformedEnvelope):
    """The envelope is cut short (a length field points past the end)."""


class UnknownEnvelopeVersion(EnvelopeError):
    """The format version is not one this build can read."""


class ContextMismatch(EnvelopeError):
    """The envelope was sealed for another record context or alias."""


class TamperedEnvelope(EnvelopeError):
    """Authentication failed although the context matched: the envelope was altered."""
