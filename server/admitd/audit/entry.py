"""One audit entry and its canonical encoding (RFC 8785 JSON: sorted keys, strings only)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring
from time import gmtime, strftime

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "Coalesced",
    "SaltPool",
    "canonical_bytes",
    "canonical_bytes_from_mapping",
    "entry_digest",
    "new_salt",
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


def new_salt() -> str:
    """128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(16)


class SaltPool:
    """128-bit salts cut from one OS random draw per `size` salts (one syscall per batch).

    Slices of one `os.urandom` draw are as independent and unpredictable as separate
    draws; only the number of system calls changes.
    """

    def __init__(self, size: int = 256) -> None:
        self._size, self._hex, self._next = size, "", 0

    def take(self) -> str:
        if self._next >= len(self._hex):
            self._hex, self._next = os.urandom(16 * self._size).hex(), 0
        salt = self._hex[self._next : self._next + 32]
        self._next += 32
        return salt


@dataclass(frozen=True, slots=True)
class Coalesced:
    """A follow-up entry standing for `count` identical denials; the entry's `time` is the
    first of them, `last_time` the last (see docs/audit.md, "Coalesced denials")."""

    count: int
    last_time: float


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
    salt: str = field(default_factory=new_salt, repr=False)
    coalesced: Coalesced | None = None

    @property
    def decisions(self) -> int:
        """How many decisions (or events) this entry stands for."""
        return self.coalesced.count if self.coalesced is not None else 1


def rfc3339(unix_seconds: float) -> str:
    """UTC, microseconds, `Z` suffix: one spelling per instant, so the encoding is stable.

    Rounds to the microsecond half-to-even as `datetime.fromtimestamp` does; the
    seconds part is formatted once per second (entries of a batch share it).
    """
    fraction, whole = math.modf(unix_seconds)
    micros, second = round(fraction * 1e6), int(whole)
    if micros >= 1_000_000:
        micros, second = micros - 1_000_000, second + 1
    elif micros < 0:
        micros, second = micros + 1_000_000, second - 1
    if not 0 <= second < 253_402_300_800:  # outside years 1970..9999: the general path
        return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{_second_text(second)}.{micros:06d}Z"


@functools.lru_cache(maxsize=64)
def _second_text(second: int) -> str:
    return strftime("%Y-%m-%dT%H:%M:%S", gmtime(second))


def _document(entry: AuditEntry) -> dict[str, object]:
    document: dict[str, object] = {
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
    if entry.coalesced is not None:
        document["count"] = str(entry.coalesced.count)
        document["first_time"] = document["time"]
        document["last_time"] = rfc3339(entry.coalesced.last_time)
    return document


def canonical_bytes(entry: AuditEntry) -> bytes:
    """The exact plaintext that is sealed and digested (format in docs/audit.md).

    Byte for byte `canonical_bytes_from_mapping(_document(entry))` (a test holds the
    two together, keys in json's sorted order), written out in one f-string: json.dumps
    with options builds a new encoder per call, which cost as much as sealing. A lone
    surrogate (not Unicode text) becomes "?" instead of failing the whole batch.
    """
    q = _quoted
    time_text = q(rfc3339(entry.time))
    coalesced = entry.coalesced
    count = first = last = ""
    if coalesced is not None:
        count = f'"count":{q(str(coalesced.count))},'
        first = f'"first_time":{time_text},'
        last = f'"last_time":{q(rfc3339(coalesced.last_time))},'
    signals = ",".join(map(q, entry.risk_signals))
    text = (
        f'{{{count}"decision":{q(entry.decision)},"details":{_details(entry.details)},'
        f'"device_id":{q(entry.device_id)},"event_type":{q(entry.event_type)},{first}'
        f'"instance":{q(entry.instance)},{last}"organisation":{q(entry.organisation)},'
        f'"policy_version":{q(entry.policy_version)},"principal":{q(entry.principal)},'
        f'"reason":{q(entry.reason)},"risk_level":{q(entry.risk_level)},'
        f'"risk_signals":[{signals}],"salt":{q(entry.salt)},'
        f'"session_hash":{q(entry.session_hash)},"source_ip":{q(entry.source_ip)},'
        f'"time":{time_text},"user":{q(entry.user)},"v":"1"}}'
    )
    return text.encode("utf-8", "replace")


_quoted = encode_basestring  # JSON string syntax, non-ASCII kept: what ensure_ascii=False uses


def _details(details: tuple[tuple[str, str], ...]) -> str:
    pairs = sorted(dict(details).items())  # as dict(): a repeated name keeps its last value
    return "{" + ",".join(f"{_quoted(k)}:{_quoted(v)}" for k, v in pairs) + "}"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes_from_mapping(document: object) -> bytes:
    """Re-encode a decoded entry; for string-only JSON this output is RFC 8785 (JCS).

    Python's encoder with sorted keys, no whitespace and `ensure_ascii=False`
    emits exactly JCS for objects whose keys are ASCII and whose leaves are strings.
    """
    return _CANONICAL.encode(document).encode("utf-8")


def entry_digest(plaintext: bytes) -> bytes:
    """SHA-256 of the canonical plaintext: the `digest` kept beside the ciphertext."""
    return hashlib.sha256(plaintext).digest()
