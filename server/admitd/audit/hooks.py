"""Audit the session life cycle and MFA verifications by wrapping the ports they go through.

The admin API and the step-up pages use a `SessionStore`, a `TotpFactor` and a
`PasskeyFactor`; wrapping those three records every session creation and
revocation and every verification success and failure, whoever calls them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, Generic, TypeVar

from admitd.audit.entry import AuditEntry, AuditEvent
from admitd.audit.receipt import Receipt, wait_durable
from admitd.mfa.ports import MfaResult, PasskeyFactor, TotpEnrolment, TotpFactor
from admitd.sessions.model import Session
from admitd.sessions.store import DelegatingSessionStore, SessionStore
from admitd.sessions.tokens import SessionRef

__all__ = ["Append", "AuditedPasskeys", "AuditedSessionStore", "AuditedTotp"]

# What queues an entry; a returned receipt settles once the entry is durable
# (`AuditLog`, durable answers), and the wrapped call returns only then.
Append = Callable[[AuditEntry], Receipt | None]
Factor = TypeVar("Factor", TotpFactor, PasskeyFactor)


def _mfa_entry(
    method: str, step: str, user_id: str, organisation: str, result: MfaResult, *, instance: str
) -> AuditEntry:
    event = AuditEvent.MFA_SUCCEEDED if result is MfaResult.OK else AuditEvent.MFA_FAILED
    return AuditEntry(
        time=time.time(),
        event_type=event,
        decision="allow" if result is MfaResult.OK else "deny",
        reason=result.value,
        user=user_id,
        organisation=organisation,
        instance=instance,
        details=(("method", method), ("step", step)),
    )


class _AuditedFactor(Generic[Factor]):
    """Wraps one factor and records the outcome of each enrolment and verification."""

    _method: ClassVar[str]  # the `method` detail of the audit entry

    def __init__(self, inner: Factor, append: Append, instance: str = "") -> None:
        self._inner: Factor = inner
        self._append, self._instance = append, instance

    async def _recorded(
        self, step: str, user_id: str, organisation: str, outcome: Awaitable[MfaResult]
    ) -> MfaResult:
        result = await outcome
        await wait_durable(
            self._append(
                _mfa_entry(
                    self._method, step, user_id, organisation, result, instance=self._instance
                )
            )
        )
        return result


class AuditedSessionStore(DelegatingSessionStore):
    def __init__(self, inner: SessionStore, append: Append, instance: str) -> None:
        super().__init__(inner)
        self._append, self._instance = append, instance

    async def _record(
        self,
        event: AuditEvent,
        user_id: str,
        organisation: str = "",
        session_id: str = "",
        **details: str,
    ) -> None:
        await wait_durable(
            self._append(
                AuditEntry(
                    time=time.time(),
                    event_type=event,
                    user=user_id,
                    organisation=organisation,
                    session_hash=session_id,
                    instance=self._instance,
                    details=tuple(details.items()),
                )
            )
        )

    async def create(self, ref: SessionRef, session: Session) -> None:
        await self._inner.create(ref, session)
        await self._record(
            AuditEvent.SESSION_CREATED,
            session.user_id,
            session.organisation,
            ref.session_id,
            roles=",".join(sorted(session.roles)),
            device_id=session.device_id,
        )

    async def revoke(self, ref: SessionRef) -> bool:
        revoked = await self._inner.revoke(ref)
        if revoked:
            await self._record(
                AuditEvent.SESSION_REVOKED, "", session_id=ref.session_id, scope="session"
            )
        return revoked

    async def revoke_user(self, user_id: str) -> int:
        count = await self._inner.revoke_user(user_id)
        await self._record(AuditEvent.SESSION_REVOKED, user_id, scope="user", sessions=str(count))
        return count


class AuditedTotp(_AuditedFactor[TotpFactor]):
    _method = "totp"

    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        return await self._inner.begin_enrolment(user_id, organisation, now)

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        confirmed = self._inner.confirm_enrolment(user_id, organisation, code, now)
        return await self._recorded("enrol", user_id, organisation, confirmed)

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        verified = self._inner.verify(user_id, organisation, code, now)
        return await self._recorded("verify", user_id, organisation, verified)


class AuditedPasskeys(_AuditedFactor[PasskeyFactor]):
    _method = "passkey"

    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        return await self._inner.registration_options(user_id, user_name, now)

    async def register(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        registered = self._inner.register(user_id, organisation, credential_json, now)
        return await self._recorded("enrol", user_id, organisation, registered)

    async def authentication_options(self, user_id: str, now: float) -> str:
        return await self._inner.authentication_options(user_id, now)

    async def authenticate(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        authenticated = self._inner.authenticate(user_id, organisation, credential_json, now)
        return await self._recorded("verify", user_id, organisation, authenticated)
