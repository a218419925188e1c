"""Dual-control overrides: one admin requests, a different admin approves, then it applies.

    admitd:risk:override:<id>   HASH, one override (kept `_KEEP_SECONDS` after it is final)
    admitd:risk:overrides       ZSET of override IDs by request time

Kinds: trust a device for one user (the device is then known and never deviates),
raise an organisation's baseline-deviation threshold, or add a trusted value to an
organisation's baseline. Admins are the certificate identities the admin API
authorised, never a name from the request, so nobody can approve as someone else.
Every step (requested, refused, approved) is an audit event.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from admitd.risk.errors import InvalidRequest
from admitd.risk.model import BaselineAttribute

__all__ = [
    "APPROVE_SCRIPT",
    "Override",
    "OverrideKind",
    "OverrideRequest",
    "OverrideStatus",
    "audit_fields",
    "check_organisation",
    "check_request",
    "fields_from_override",
    "new_override_id",
    "override_from_fields",
    "override_key",
]

OVERRIDE_INDEX = "admitd:risk:overrides"
_ORGANISATION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ID = re.compile(r"[0-9a-f]{16}")
_VALUE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_REASON = 500

# Atomic: one approval wins; the requester can never approve; an approver whose
# apply step failed may repeat it (applying is idempotent).
APPROVE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if redis.call('HGET', KEYS[1], 'requested_by') == ARGV[1] then return 'same_admin' end
if status == 'pending' then
  if tonumber(redis.call('HGET', KEYS[1], 'expires_at')) <= tonumber(ARGV[2]) then
    return 'expired' end
  redis.call('HSET', KEYS[1], 'status', 'approved', 'approved_by', ARGV[1], 'approved_at', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 'ok'
end
if status == 'approved' and redis.call('HGET', KEYS[1], 'applied') ~= '1'
   and redis.call('HGET', KEYS[1], 'approved_by') == ARGV[1] then return 'ok' end
return status
"""


class OverrideKind(StrEnum):
    TRUST_DEVICE = "trust_device"
    RAISE_THRESHOLD = "raise_threshold"
    EXTEND_BASELINE = "extend_baseline"


class OverrideStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EXPIRED = "expired"  # pending past its expiry: can no longer be approved


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    """What the first admin asks for; which fields matter depends on `kind`."""

    kind: OverrideKind
    organisation: str
    reason: str
    user_id: str = ""  # trust_device
    device_id: str = ""  # trust_device
    threshold: float | None = None  # raise_threshold (0..1)
    attribute: BaselineAttribute | None = None  # extend_baseline
    value: str = ""  # extend_baseline


@dataclass(frozen=True, slots=True)
class Override:
    override_id: str
    request: OverrideRequest
    requested_by: str
    requested_at: float
    expires_at: float
    status: OverrideStatus
    approved_by: str = ""
    approved_at: float | None = None
    applied: bool = False


def override_key(override_id: str) -> str:
    return f"admitd:risk:override:{override_id}"


def new_override_id() -> str:
    return secrets.token_hex(8)


def is_override_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


def check_organisation(organisation: str) -> str:
    """Organisation names become key parts: 1-64 of `A-Za-z0-9._-`."""
    if not _ORGANISATION.fullmatch(organisation):
        raise InvalidRequest("organisation must be 1-64 characters of A-Za-z0-9._-")
    return organisation


def check_request(request: OverrideRequest) -> OverrideRequest:
    """The request, normalised; InvalidRequest says what is wrong."""
    check_organisation(request.organisation)
    reason = request.reason.strip()
    if not reason or len(reason) > _MAX_REASON or not reason.isprintable():
        raise InvalidRequest(f"a reason is required: 1-{_MAX_REASON} printable characters")
    if request.kind is OverrideKind.TRUST_DEVICE:
        if not request.user_id or len(request.user_id) > 256 or not request.user_id.isprintable():
            raise InvalidRequest("trust_device needs a user_id (1-256 printable characters)")
        if not _VALUE.fullmatch(request.device_id):
            raise InvalidRequest("trust_device needs a device_id (1-128 of A-Za-z0-9._:-)")
        return OverrideRequest(
            request.kind, request.organisation, reason, request.user_id, request.device_id
        )
    if request.kind is OverrideKind.RAISE_THRESHOLD:
        if request.threshold is None or not 0.0 < request.threshold <= 1.0:
            raise InvalidRequest("raise_threshold needs a threshold in (0, 1]")
        return OverrideRequest(
            request.kind, request.organisation, reason, threshold=request.threshold
        )
    if request.attribute is None or not _VALUE.fullmatch(request.value):
        raise InvalidRequest(
            "extend_baseline needs an attribute and a value (1-128 of A-Za-z0-9._:-)"
        )
    value = (
        request.value if request.attribute is BaselineAttribute.DEVICE_ID else request.value.lower()
    )
    return OverrideRequest(
        request.kind, request.organisation, reason, attribute=request.attribute, value=value
    )


def fields_from_override(override: Override) -> dict[str, str]:
    r = override.request
    return {
        "kind": r.kind.value,
        "organisation": r.organisation,
        "reason": r.reason,
        "user_id": r.user_id,
        "device_id": r.device_id,
        "threshold": "" if r.threshold is None else repr(r.threshold),
        "attribute": "" if r.attribute is None else r.attribute.value,
        "value": r.value,
        "requested_by": override.requested_by,
        "requested_at": repr(override.requested_at),
        "expires_at": repr(override.expires_at),
        "status": override.status.value,
    }


def override_from_fields(override_id: str, fields: Mapping[str, str], now: float) -> Override:
    """Raises KeyError/ValueError on a damaged record (the caller skips or reports it)."""
    request = OverrideRequest(
        kind=OverrideKind(fields["kind"]),
        organisation=fields["organisation"],
        reason=fields["reason"],
        user_id=fields.get("user_id", ""),
        device_id=fields.get("device_id", ""),
        threshold=float(fields["threshold"]) if fields.get("threshold") else None,
        attribute=BaselineAttribute(fields["attribute"]) if fields.get("attribute") else None,
        value=fields.get("value", ""),
    )
    status = OverrideStatus(fields["status"])
    expires_at = float(fields["expires_at"])
    if status is OverrideStatus.PENDING and now >= expires_at:
        status = OverrideStatus.EXPIRED
    approved_at = fields.get("approved_at")
    return Override(
        override_id=override_id,
        request=request,
        requested_by=fields["requested_by"],
        requested_at=float(fields["requested_at"]),
        expires_at=expires_at,
        status=status,
        approved_by=fields.get("approved_by", ""),
        approved_at=float(approved_at) if approved_at else None,
        applied=fields.get("applied") == "1",
    )


def audit_fields(override: Override, **extra: str) -> dict[str, str]:
    """What an audit event says about an override (the reason included: admins wrote it)."""
    fields = fields_from_override(override)
    fields.pop("requested_at")
    fields.pop("expires_at")
    fields = {k: v for k, v in fields.items() if v}
    return {"override_id": override.override_id, **fields, **extra}
