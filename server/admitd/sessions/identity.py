"""The admitd-session identity source: a session cookie or bearer token -> the `User` it names.

It implements `admitd.identity.IdentitySource`: a request's credential becomes a
`UserLookup` for the core, and it names its own credentials so the core keeps them from
the upstream.
"""

from __future__ import annotations

from admitd.core.context import RequestContext
from admitd.core.identity import UserLookup, UserState
from admitd.errors import StoreUnavailable
from admitd.identity import NOBODY, Found
from admitd.sessions.carrier import carries_session_bearer, session_token_from_request
from admitd.sessions.model import user_from_session
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import SessionRef, parse_session_token

__all__ = ["SessionIdentity"]


class SessionIdentity:
    """Looks sessions up in the store; last-seen times are batched, written off the hot path."""

    def __init__(self, store: SessionStore, cookie_name: str) -> None:
        self.store = store
        self.cookie_name = cookie_name
        self._seen: dict[SessionRef, float] = {}

    def carries_own_bearer(self, ctx: RequestContext) -> bool:
        return carries_session_bearer(ctx.header("authorization"))

    async def lookup(self, ctx: RequestContext, now: float) -> Found:
        token, carrier = session_token_from_request(ctx, self.cookie_name)
        if not token:
            return NOBODY
        ref = parse_session_token(token)
        if ref is None:
            return Found(UserLookup.of(UserState.MALFORMED, carrier))
        try:
            session = await self.store.get(ref)
        except StoreUnavailable:
            return Found(UserLookup.of(UserState.UNAVAILABLE, carrier))
        if session is None:
            return Found(UserLookup.of(UserState.UNKNOWN, carrier))
        if session.is_expired(now):
            return Found(UserLookup.of(UserState.EXPIRED, carrier))
        self._seen[ref] = now
        user = UserLookup(UserState.ACTIVE, user_from_session(session), carrier)
        return Found(user, session.risk_state)

    async def flush_last_seen(self) -> None:
        """Write batched last-seen times; kept for the next try on failure."""
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        try:
            await self.store.touch(seen)
        except StoreUnavailable:
            self._seen = {**seen, **self._seen}
