"""The admitd-session identity source: a session cookie or bearer token -> the `User` it names.

An identity source turns a request's user credential into a `UserLookup` for the core,
and names its own credentials so the core can keep them from the upstream. Another
source (an IdP token) is another module with the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from admitd.core.context import RequestContext
from admitd.core.identity import UserLookup, UserState
from admitd.errors import StoreUnavailable
from admitd.sessions.carrier import carries_session_bearer, session_token_from_request
from admitd.sessions.model import Session, user_from_session
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import SessionRef, parse_session_token

__all__ = ["NO_SESSION", "SessionIdentity", "SessionLookup"]

_NOT_PRESENTED = UserLookup(UserState.NOT_PRESENTED)


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """What the core gets (`user`), and the stored session behind it for the adapters
    that need more than the core does (device risk reads its history)."""

    user: UserLookup
    session: Session | None = None


NO_SESSION = SessionLookup(_NOT_PRESENTED)


class SessionIdentity:
    """Looks sessions up in the store; last-seen times are batched, written off the hot path."""

    def __init__(self, store: SessionStore, cookie_name: str) -> None:
        self.store = store
        self.cookie_name = cookie_name
        self._seen: dict[SessionRef, float] = {}

    def carries_own_bearer(self, ctx: RequestContext) -> bool:
        return carries_session_bearer(ctx.header("authorization"))

    async def lookup(self, ctx: RequestContext, now: float) -> SessionLookup:
        token, carrier = session_token_from_request(ctx, self.cookie_name)
        if not token:
            return NO_SESSION
        ref = parse_session_token(token)
        if ref is None:
            return SessionLookup(UserLookup.of(UserState.MALFORMED, carrier))
        try:
            session = await self.store.get(ref)
        except StoreUnavailable:
            return SessionLookup(UserLookup.of(UserState.UNAVAILABLE, carrier))
        if session is None:
            return SessionLookup(UserLookup.of(UserState.UNKNOWN, carrier))
        if session.is_expired(now):
            return SessionLookup(UserLookup.of(UserState.EXPIRED, carrier))
        self._seen[ref] = now
        user = UserLookup(UserState.ACTIVE, user_from_session(session), carrier)
        return SessionLookup(user, session)

    async def flush_last_seen(self) -> None:
        """Write batched last-seen times; kept for the next try on failure."""
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        try:
            await self.store.touch(seen)
        except StoreUnavailable:
            self._seen = {**seen, **self._seen}
