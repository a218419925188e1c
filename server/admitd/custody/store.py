"""Key change requests in Redis, dual control, the passkey proof, and every step audited.

Audit events (`kms.key_change.*`): requested, refused (with `why`), approved, applied,
failed, expired. Each names the change, the caller's principal and user; none
carries a session token or key material.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis.asyncio as redis

from admitd.admin.errors import AdminRequestError, PreconditionFailed
from admitd.custody.apply import BufferedEvents, KmsChanges
from admitd.custody.changes import (
    APPROVE_SCRIPT,
    CHANGE_INDEX,
    EXPIRE_SCRIPT,
    KEEP_SECONDS,
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Custodian,
    KeyChange,
    audit_fields,
    change_from_fields,
    change_key,
    check_request,
    fields_from_change,
    is_change_id,
    new_change_id,
)
from admitd.custody.errors import ChangeNotFound, SameCustodian
from admitd.custody.proof import MfaRefused, PasskeyProof, ProofChecker
from admitd.errors import AdmitdError
from admitd.kms.audit import AuditEvents
from admitd.kms.base import KeyVersion

__all__ = ["KeyCustody"]

log = logging.getLogger(__name__)

_EVENT = "kms.key_change."
_REFUSALS: dict[str, tuple[type[AdminRequestError], str]] = {
    "missing": (ChangeNotFound, "no such key change"),
    "same_admin": (SameCustodian, "dual control: a different custodian must approve this change"),
    "same_user": (
        SameCustodian,
        "dual control: this certificate maps to the requester's user; a different person"
        " must approve",
    ),
    "expired": (PreconditionFailed, "the change expired before it was approved; request it again"),
    "just_expired": (
        PreconditionFailed,
        "the change expired before it was approved; request it again",
    ),
    "approved": (PreconditionFailed, "the change was already approved (it is being applied)"),
    "applied": (PreconditionFailed, "the change was already approved and applied"),
    "failed": (PreconditionFailed, "the change was already approved; applying it failed"),
}


class KeyCustody:
    """Request, approve, list. `custodians` maps principals to user IDs (keys.custodians)."""

    def __init__(
        self,
        client: redis.Redis,
        kms: KmsChanges,
        proof: ProofChecker,
        audit: AuditEvents,
        *,
        custodians: Mapping[str, str],
        change_ttl_seconds: float = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis, self._kms, self._proof, self._audit = client, kms, proof, audit
        self._custodians, self._ttl, self._clock = custodians, change_ttl_seconds, clock
        self._approve = client.register_script(APPROVE_SCRIPT)
        self._expire = client.register_script(EXPIRE_SCRIPT)
        self._applying: set[asyncio.Task[KeyChange]] = set()

    def custodian(self, principal: str) -> Custodian:
        return Custodian(principal, self._custodians[principal])

    def refused(self, rpc: str, caller: str, why: str, **extra: str) -> None:
        """Audit a refusal (also of callers who are not custodians: the guard refuses them)."""
        self._audit.record(
            _EVENT + "refused", {"rpc": rpc, "principal": caller, "why": why, **extra}
        )

    async def request(
        self, request: ChangeRequest, principal: str, session_token: str
    ) -> KeyChange:
        by = self.custodian(principal)
        proof = await self._checked_proof("RequestKeyChange", by, session_token)
        try:
            request = check_request(request)
            await self._kms.check(request)
        except AdmitdError as exc:
            self.refused("RequestKeyChange", principal, "invalid", user=by.user_id, error=str(exc))
            raise
        now = self._clock()
        change = KeyChange(new_change_id(), request, by, now, now + self._ttl, ChangeStatus.PENDING)
        key = change_key(change.change_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, fields_from_change(change)))
            pipe.expire(key, int(self._ttl) + KEEP_SECONDS)
            pipe.zadd(CHANGE_INDEX, {change.change_id: now})
            await pipe.execute()
        self._audit.record(_EVENT + "requested", audit_fields(change, **_who(by, proof)))
        return change

    async def approve(self, change_id: str, principal: str, session_token: str) -> KeyChange:
        """Approve and apply once. Refused (and audited) for the requester (certificate or
        user), without a fresh passkey, and when the change is unknown, expired or final."""
        by = self.custodian(principal)
        proof = await self._checked_proof("ApproveKeyChange", by, session_token)
        outcome = "missing"
        if is_change_id(change_id):
            outcome = await cast(
                Any,
                self._approve(
                    keys=[change_key(change_id)],
                    args=[by.principal, by.user_id, self._clock(), KEEP_SECONDS],
                ),
            )
        outcome = str(outcome)
        if outcome != "ok":
            if outcome == "just_expired":
                await self._audit_expiry(change_id)
            self.refused(
                "ApproveKeyChange", principal, outcome, user=by.user_id, change_id=change_id[:64]
            )
            kind, message = _REFUSALS.get(outcome, (PreconditionFailed, f"change is {outcome}"))
            raise kind(message)
        change = await self.get(change_id)
        self._audit.record(_EVENT + "approved", audit_fields(change, **_who(by, proof)))
        task = asyncio.create_task(self._apply(change))
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)
        if change.request.kind is ChangeKind.REENCRYPT:
            return change  # a walk over every record: follow it with ListKeyChanges
        # Shielded: a caller who hangs up must not leave the change half-recorded.
        return await asyncio.shield(task)

    async def get(self, change_id: str) -> KeyChange:
        if not is_change_id(change_id):
            raise ChangeNotFound("no such key change")
        fields = await cast(Any, self._redis.hgetall(change_key(change_id)))
        if not fields:
            raise ChangeNotFound("no such key change")
        return change_from_fields(change_id, fields, self._clock())

    async def changes(self, *, pending_only: bool = False) -> list[KeyChange]:
        """Newest first; expiries seen here are recorded (and audited) once."""
        ids = await cast(Any, self._redis.zrevrange(CHANGE_INDEX, 0, 999))
        async with self._redis.pipeline(transaction=False) as pipe:
            for change_id in ids:
                pipe.hgetall(change_key(change_id))
            records = await pipe.execute()
        changes, now = [], self._clock()
        for change_id, fields in zip(ids, records, strict=True):
            try:
                change = change_from_fields(change_id, fields, now)
            except (KeyError, ValueError):
                if fields:
                    log.warning("skipping damaged key change record %s", change_id)
                continue
            if change.status is ChangeStatus.EXPIRED and fields.get("status") == "pending":
                await self._expire_once(change_id, now)
            changes.append(change)
        return [c for c in changes if not pending_only or c.status is ChangeStatus.PENDING]

    async def versions(self) -> list[KeyVersion]:
        return await self._kms.versions()

    async def idle(self) -> None:
        """Wait for changes being applied (tests; shutdown)."""
        while self._applying:
            await asyncio.gather(*self._applying, return_exceptions=True)

    async def _checked_proof(self, rpc: str, by: Custodian, session_token: str) -> PasskeyProof:
        try:
            return await self._proof.check(by.user_id, session_token, self._clock())
        except MfaRefused as exc:
            self.refused(rpc, by.principal, f"mfa_{exc.why}", user=by.user_id)
            raise

    async def _apply(self, change: KeyChange) -> KeyChange:
        events = BufferedEvents(change_id=change.change_id)
        key = change_key(change.change_id)
        try:
            result = await self._kms.apply(change.request, events)
        except Exception as exc:  # recorded as failed, never retried
            events.replay(self._audit)
            error = str(exc) if isinstance(exc, AdmitdError) else type(exc).__name__
            if not isinstance(exc, AdmitdError):
                log.error("key change %s failed", change.change_id, exc_info=exc)
            fields = {"status": ChangeStatus.FAILED.value, "error": error[:500]}
            await cast(Any, self._redis.hset(key, mapping=cast(Any, fields)))
            self._audit.record(_EVENT + "failed", audit_fields(change, error=error[:500]))
            return await self.get(change.change_id)
        events.replay(self._audit)
        fields = {
            "status": ChangeStatus.APPLIED.value,
            "result": result,
            "applied_at": repr(self._clock()),
        }
        await cast(Any, self._redis.hset(key, mapping=cast(Any, fields)))
        self._audit.record(_EVENT + "applied", audit_fields(change, result=result))
        return await self.get(change.change_id)

    async def _expire_once(self, change_id: str, now: float) -> None:
        if await cast(Any, self._expire(keys=[change_key(change_id)], args=[now])):
            await self._audit_expiry(change_id)

    async def _audit_expiry(self, change_id: str) -> None:
        try:
            change = await self.get(change_id)
        except ChangeNotFound:
            return
        self._audit.record(_EVENT + "expired", audit_fields(change))


def _who(by: Custodian, proof: PasskeyProof) -> dict[str, str]:
    """The caller and the passkey verification that vouched for the call."""
    return {
        "principal": by.principal,
        "user": by.user_id,
        "session_hash": proof.session_id,
        "passkey_verified_at": repr(proof.verified_at),
        "aaguid": proof.aaguid or "unknown",
    }
