"""Key change requests: the record, its validation, and the atomic approve script.

    admitd:keys:change:<id>   HASH, one change (kept `KEEP_SECONDS` after it is final)
    admitd:keys:changes       ZSET of change IDs by request time
    admitd:keys:provider      HASH, the approved kms: provider (custody.provider)

A custodian is a certificate principal and the admitd user that principal maps to
(`keys.custodians`); the approver must differ from the requester in both, so neither
one person with two certificates nor two people sharing one certificate suffices.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from admitd.admin.errors import InvalidRequest
from admitd.custody.provider import ProviderSettings, settings_from_json
from admitd.kms.base import is_valid_alias

__all__ = [
    "APPROVE_SCRIPT",
    "CHANGE_INDEX",
    "EXPIRE_SCRIPT",
    "KEEP_SECONDS",
    "ChangeKind",
    "ChangeRequest",
    "ChangeStatus",
    "Custodian",
    "KeyChange",
    "audit_fields",
    "change_from_fields",
    "change_key",
    "check_request",
    "fields_from_change",
    "is_change_id",
    "new_change_id",
]

CHANGE_INDEX = "admitd:keys:changes"
KEEP_SECONDS = 30 * 86_400  # final changes stay listable this long (the audit log keeps them)
_ID = re.compile(r"[0-9a-f]{16}")
_MAX_REASON = 500

# Atomic, so concurrent approvals on any replica meet one record: exactly one of them
# gets 'ok' and applies the change; every other one gets the status it found.
# ARGV: approver principal, approver user, now, seconds to keep the record.
APPROVE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if redis.call('HGET', KEYS[1], 'requested_by') == ARGV[1] then return 'same_admin' end
if redis.call('HGET', KEYS[1], 'requested_user') == ARGV[2] then return 'same_user' end
if status ~= 'pending' then return status end
if tonumber(redis.call('HGET', KEYS[1], 'expires_at')) <= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'expired')
  return 'just_expired'
end
redis.call('HSET', KEYS[1], 'status', 'approved', 'approved_by', ARGV[1],
  'approved_user', ARGV[2], 'approved_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 'ok'
"""

# A pending change past its expiry becomes 'expired' once; 1 when this call did it
# (so the expiry is audited exactly once). ARGV: now.
EXPIRE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'expires_at')) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired')
return 1
"""


class ChangeKind(StrEnum):
    ROTATE = "rotate"
    RETIRE = "retire"
    REENCRYPT = "reencrypt"
    PROVIDER = "provider"  # approve another kms: provider (custody.provider)


class ChangeStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # being applied
    APPLIED = "applied"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Custodian:
    principal: str  # the client certificate's identity, as the guard matched it
    user_id: str  # keys.custodians[principal]: whose passkey vouches for this call


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    kind: ChangeKind
    alias: str
    reason: str
    version: int = 0  # retire only
    settings: str = ""  # provider only: the new kms: settings, canonical JSON once checked

    @property
    def provider(self) -> ProviderSettings:
        """A provider change's settings (InvalidRequest for any other kind)."""
        return settings_from_json(self.settings)


@dataclass(frozen=True, slots=True)
class KeyChange:
    change_id: str
    request: ChangeRequest
    requested_by: Custodian
    requested_at: float
    expires_at: float
    status: ChangeStatus
    approved_by: Custodian | None = None
    approved_at: float | None = None
    applied_at: float | None = None
    result: str = ""
    error: str = ""


def change_key(change_id: str) -> str:
    return f"admitd:keys:change:{change_id}"


def new_change_id() -> str:
    return secrets.token_hex(8)


def is_change_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def check_request(request: ChangeRequest) -> ChangeRequest:
    """The request, normalised; InvalidRequest says what is wrong."""
    if request.kind is ChangeKind.PROVIDER:
        if request.alias or request.version:
            raise InvalidRequest("provider takes no alias and no version (the settings say all)")
    elif not is_valid_alias(request.alias):
        raise InvalidRequest("alias must be kms/<name>, e.g. kms/session-secrets")
    elif request.settings:
        raise InvalidRequest(f"{request.kind.value} takes no provider_settings")
    reason = request.reason.strip()
    if not reason or len(reason) > _MAX_REASON or not reason.isprintable():
        raise InvalidRequest(f"a reason is required: 1-{_MAX_REASON} printable characters")
    if request.kind is ChangeKind.PROVIDER:
        settings = settings_from_json(request.settings).canonical()
        return ChangeRequest(request.kind, "", reason, settings=settings)
    if request.kind is ChangeKind.RETIRE:
        if request.version < 1:
            raise InvalidRequest("retire needs the version to destroy (1 or more)")
        return ChangeRequest(request.kind, request.alias, reason, request.version)
    if request.version:
        raise InvalidRequest(f"{request.kind.value} takes no version")
    return ChangeRequest(request.kind, request.alias, reason)


def fields_from_change(change: KeyChange) -> dict[str, str]:
    r = change.request
    return {
        "kind": r.kind.value,
        "alias": r.alias,
        "version": str(r.version),
        "reason": r.reason,
        "settings": r.settings,
        "requested_by": change.requested_by.principal,
        "requested_user": change.requested_by.user_id,
        "requested_at": repr(change.requested_at),
        "expires_at": repr(change.expires_at),
        "status": change.status.value,
    }


def change_from_fields(change_id: str, fields: Mapping[str, str], now: float) -> KeyChange:
    """Raises KeyError/ValueError on a damaged record (the caller skips or reports it)."""
    status = ChangeStatus(fields["status"])
    expires_at = float(fields["expires_at"])
    if status is ChangeStatus.PENDING and now >= expires_at:
        status = ChangeStatus.EXPIRED  # as the approve script will see it
    approver = None
    if fields.get("approved_by"):
        approver = Custodian(fields["approved_by"], fields.get("approved_user", ""))
    return KeyChange(
        change_id=change_id,
        request=ChangeRequest(
            ChangeKind(fields["kind"]),
            fields["alias"],
            fields["reason"],
            int(fields["version"]),
            fields.get("settings", ""),
        ),
        requested_by=Custodian(fields["requested_by"], fields["requested_user"]),
        requested_at=float(fields["requested_at"]),
        expires_at=expires_at,
        status=status,
        approved_by=approver,
        approved_at=_float(fields.get("approved_at")),
        applied_at=_float(fields.get("applied_at")),
        result=fields.get("result", ""),
        error=fields.get("error", ""),
    )


def audit_fields(change: KeyChange, **extra: str) -> dict[str, str]:
    """What an audit event says about a change (never a token, never key material)."""
    r = change.request
    fields = {
        "change_id": change.change_id,
        "kind": r.kind.value,
        "alias": r.alias,
        "reason": r.reason,
        "requested_by": change.requested_by.principal,
        "requested_user": change.requested_by.user_id,
    }
    if r.kind is ChangeKind.RETIRE:
        fields["version"] = str(r.version)
    if r.kind is ChangeKind.PROVIDER:
        del fields["alias"]
        fields["provider_fingerprint"] = r.provider.fingerprint
        fields["provider_summary"] = r.provider.summary
    if change.approved_by is not None:
        fields["approved_by"] = change.approved_by.principal
        fields["approved_user"] = change.approved_by.user_id
    return {**fields, **extra}


def _float(text: str | None) -> float | None:
    return float(text) if text else None
