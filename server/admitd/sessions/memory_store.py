"""An in-memory SessionStore: the embedded default for one development process, and tests."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.tokens import SessionRef, user_tag

__all__ = ["MemorySessionStore"]


class MemorySessionStore:
    """Single process only: replicas would not see each other's sessions."""

    def __init__(self) -> None:
        self._sessions: dict[SessionRef, Session] = {}
        self._factors: dict[str, dict[MfaMethod, float]] = {}
        self._revoked_at: dict[str, float] = {}

    async def get(self, ref: SessionRef) -> Session | None:
        session = self._sessions.get(ref)
        if session is None:
            return None
        return dataclasses.replace(session, factors=await self.factors(session.user_id))

    async def create(self, ref: SessionRef, session: Session) -> None:
        self._sessions[ref] = session

    async def set_mfa(self, ref: SessionRef, verified_at: float, method: MfaMethod) -> bool:
        session = self._sessions.get(ref)
        if session is None:
            return False
        self._sessions[ref] = session.with_mfa(verified_at, method)
        return True

    async def touch(self, seen: Mapping[SessionRef, float]) -> None:
        for ref, at in seen.items():
            if ref in self._sessions:
                self._sessions[ref] = dataclasses.replace(self._sessions[ref], last_seen_at=at)

    async def revoke(self, ref: SessionRef) -> bool:
        return self._sessions.pop(ref, None) is not None

    async def revoke_user(self, user_id: str) -> int:
        tag = user_tag(user_id)
        doomed = [ref for ref in self._sessions if ref.tag == tag]
        for ref in doomed:
            del self._sessions[ref]
        self._revoked_at[user_id] = time.time()
        return len(doomed)

    async def revoked_at(self, user_id: str) -> float | None:
        return self._revoked_at.get(user_id)

    async def list_user(self, user_id: str) -> list[Session]:
        factors = await self.factors(user_id)
        return [
            dataclasses.replace(s, factors=factors)
            for s in self._sessions.values()
            if s.user_id == user_id
        ]

    async def factors(self, user_id: str) -> frozenset[MfaMethod]:
        return frozenset(self._factors.get(user_id, {}))

    async def set_factor(self, user_id: str, method: MfaMethod, *, active: bool, at: float) -> None:
        factors = self._factors.setdefault(user_id, {})
        if active:
            factors[method] = at
        else:
            factors.pop(method, None)

    async def take_enrolment_grant(self, ref: SessionRef, now: float) -> bool:
        session = self._sessions.get(ref)
        if session is None or session.enrolment_grant_until is None:
            return False
        self._sessions[ref] = dataclasses.replace(session, enrolment_grant_until=None)
        return session.has_enrolment_grant(now)

    async def close(self) -> None:
        return None
