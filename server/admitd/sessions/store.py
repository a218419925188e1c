"""The session store port, and the record <-> Redis-hash encoding both stores share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.tokens import SessionRef

__all__ = [
    "ENROLMENT_GRANT_FIELD",
    "DelegatingSessionStore",
    "LoginHook",
    "SessionStore",
    "fields_from_session",
    "session_from_fields",
]

# (session, user agent, source IP, now): records a login's device telemetry (device risk),
# for every way a session starts: CreateSession, the IdP's callback, the dev sign-in.
LoginHook = Callable[[Session, str, str, float], Awaitable[object]]
# The session hash field holding `Session.enrolment_grant_until`.
ENROLMENT_GRANT_FIELD = "enrolment_grant_until"


class SessionStore(Protocol):
    """Every method may raise `StoreUnavailable`; none returns a guess."""

    async def get(self, ref: SessionRef) -> Session | None:
        """The session with its user's current factors, or None if there is none."""

    async def create(self, ref: SessionRef, session: Session) -> None: ...

    async def set_mfa(self, ref: SessionRef, verified_at: float, method: MfaMethod) -> bool:
        """Record a successful verification; False when the session no longer exists."""

    async def touch(self, seen: Mapping[SessionRef, float]) -> None:
        """Batch-update last-seen times (called off the hot path)."""

    async def revoke(self, ref: SessionRef) -> bool: ...

    async def revoke_user(self, user_id: str) -> int:
        """Revoke every session of a user (incident response); returns how many. Also
        records the time, so the user's IdP tokens issued before it are refused."""

    async def revoked_at(self, user_id: str) -> float | None:
        """When `revoke_user` last ran for this user, or None (never)."""

    async def list_user(self, user_id: str) -> list[Session]: ...

    async def factors(self, user_id: str) -> frozenset[MfaMethod]: ...

    async def set_factor(
        self, user_id: str, method: MfaMethod, *, active: bool, at: float
    ) -> None: ...

    async def take_enrolment_grant(self, ref: SessionRef, now: float) -> bool:
        """Remove the session's first-factor enrolment grant, atomically; True only when
        there was one and it had not expired at `now` (so it can be used once)."""

    async def close(self) -> None: ...


class DelegatingSessionStore:
    """Forwards every call to `inner`: a wrapper overrides only the calls it adds to."""

    def __init__(self, inner: SessionStore) -> None:
        self._inner = inner

    async def get(self, ref: SessionRef) -> Session | None:
        return await self._inner.get(ref)

    async def create(self, ref: SessionRef, session: Session) -> None:
        await self._inner.create(ref, session)

    async def set_mfa(self, ref: SessionRef, verified_at: float, method: MfaMethod) -> bool:
        return await self._inner.set_mfa(ref, verified_at, method)

    async def touch(self, seen: Mapping[SessionRef, float]) -> None:
        await self._inner.touch(seen)

    async def revoke(self, ref: SessionRef) -> bool:
        return await self._inner.revoke(ref)

    async def revoke_user(self, user_id: str) -> int:
        return await self._inner.revoke_user(user_id)

    async def revoked_at(self, user_id: str) -> float | None:
        return await self._inner.revoked_at(user_id)

    async def list_user(self, user_id: str) -> list[Session]:
        return await self._inner.list_user(user_id)

    async def factors(self, user_id: str) -> frozenset[MfaMethod]:
        return await self._inner.factors(user_id)

    async def set_factor(self, user_id: str, method: MfaMethod, *, active: bool, at: float) -> None:
        await self._inner.set_factor(user_id, method, active=active, at=at)

    async def take_enrolment_grant(self, ref: SessionRef, now: float) -> bool:
        return await self._inner.take_enrolment_grant(ref, now)

    async def close(self) -> None:
        await self._inner.close()


def fields_from_session(session: Session) -> dict[str, str]:
    fields = {
        "user_id": session.user_id,
        "organisation": session.organisation,
        "roles": ",".join(sorted(session.roles)),
        "device_id": session.device_id,
        "created_at": repr(session.created_at),
        "last_seen_at": repr(session.last_seen_at),
        "idle_timeout": repr(session.idle_timeout),
        "absolute_expires_at": repr(session.absolute_expires_at),
    }
    if session.mfa_verified_at is not None and session.mfa_method is not None:
        fields["mfa_verified_at"] = repr(session.mfa_verified_at)
        fields["mfa_method"] = session.mfa_method.value
    if session.enrolment_grant_until is not None:
        fields[ENROLMENT_GRANT_FIELD] = repr(session.enrolment_grant_until)
    if session.idp_factors:
        fields["idp_factors"] = ",".join(sorted(f.value for f in session.idp_factors))
    return fields


def session_from_fields(
    session_id: str,
    fields: Mapping[str, str],
    factors: frozenset[MfaMethod],
    risk_state: Mapping[str, str] | None = None,
) -> Session | None:
    """Decode a stored record; a record that does not decode is treated as absent."""
    try:
        mfa_at = fields.get("mfa_verified_at")
        method = fields.get("mfa_method")
        grant = fields.get(ENROLMENT_GRANT_FIELD)
        return Session(
            session_id=session_id,
            user_id=fields["user_id"],
            organisation=fields["organisation"],
            roles=frozenset(r for r in fields["roles"].split(",") if r),
            device_id=fields["device_id"],
            created_at=float(fields["created_at"]),
            last_seen_at=float(fields["last_seen_at"]),
            idle_timeout=float(fields["idle_timeout"]),
            absolute_expires_at=float(fields["absolute_expires_at"]),
            mfa_verified_at=float(mfa_at) if mfa_at else None,
            mfa_method=MfaMethod(method) if method else None,
            factors=factors,
            enrolment_grant_until=float(grant) if grant else None,
            idp_factors=factors_from_names(fields.get("idp_factors", "").split(",")),
            risk_state=MappingProxyType(dict(risk_state or {})),
        )
    except (KeyError, ValueError):
        return None


def factors_from_names(names: list[str]) -> frozenset[MfaMethod]:
    return frozenset(MfaMethod(n) for n in names if n in MfaMethod.__members__.values())
