"""One audit entry and its canonical encoding (RFC 8785 JSON: sorted keys, strings only)."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "canonical_bytes",
    "canonical_bytes_from_mapping",
    "entry_digest",
    "rfc3339",
]


class AuditEvent(StrEnum):
    """Event types admitd itself emits; key rotation passes its own `kms.*` names through."""

    DECISION_DENIED = "decision.denied"
    STEP_UP = "decision.step_up"
    RISK_HIGH = "risk.high"
    RISK_CRITICAL = "risk.critical"
    MFA_SUCCEEDED = "mfa.verify.succeeded"
    MFA_FAILED = "mfa.verify.failed"
    SESSION_CREATED = "session.created"
    SESSION_REVOKED = "session.revoked"
    OVERRIDE_REQUESTED = "override.requested"
    OVERRIDE_APPROVED = "override.approved"
    POLICY_RELOADED = "policy.reloaded"


def _salt() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one audit entry says; every text field defaults to "" (not known / not applicable).

    `time` is Unix seconds. `salt` is 128 random bits inside the plaintext: the
    stored digest of a guessable entry (an IP, a user ID) then confirms nothing
    to someone holding only the stored record (see docs/envelope.md).
    """

    time: float
    event_type: str
    decision: str = ""
    reason: str = ""
    principal: str = ""
    user: str = ""
    organisation: str = ""
    session_hash: str = ""
    device_id: str = ""
    source_ip: str = ""
    risk_level: str = ""
    risk_signals: tuple[str, ...] = ()
    policy_version: str = ""
    instance: str = ""
    details: tuple[tuple[str, str], ...] = ()
    salt: str = field(default_factory=_salt, repr=False)


def rfc3339(unix_seconds: float) -> str:
    """UTC, microseconds, `Z` suffix: one spelling per instant, so the encoding is stable."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _document(entry: AuditEntry) -> dict[str, object]:
    return {
        "time": rfc3339(entry.time),
        "event_type": entry.event_type,
        "decision": entry.decision,
        "reason": entry.reason,
        "principal": entry.principal,
        "user": entry.user,
        "organisation": entry.organisation,
        "session_hash": entry.session_hash,
        "device_id": entry.device_id,
        "source_ip": entry.source_ip,
        "risk_level": entry.risk_level,
        "risk_signals": list(entry.risk_signals),
        "policy_version": entry.policy_version,
        "instance": entry.instance,
        "details": dict(entry.details),
        "salt": entry.salt,
        "v": "1",
    }


def canonical_bytes(entry: AuditEntry) -> bytes:
    """The exact plaintext that is sealed and digested (format in docs/audit.md)."""
    return canonical_bytes_from_mapping(_document(entry))


def canonical_bytes_from_mapping(document: object) -> bytes:
    """Re-encode a decoded entry; for string-only JSON this output is RFC 8785 (JCS).

    Python's encoder with sorted keys, no whitespace and `ensure_ascii=False`
    emits exactly JCS for objects whose keys are ASCII and whose leaves are strings.
    """
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def entry_digest(plaintext: bytes) -> bytes:
    """SHA-256 of the canonical plaintext: the `digest` kept beside the ciphertext."""
    return hashlib.sha256(plaintext).digest()
