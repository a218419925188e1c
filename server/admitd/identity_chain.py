"""Two identity sources behind one port: a JWT-shaped bearer token -> the JWT source, else sessions.

A request that carries both a JWT bearer token and a session cookie is judged by the JWT:
an API client's explicit credential wins over a cookie its browser happens to hold.
"""

from __future__ import annotations

from admitd.core.context import RequestContext
from admitd.identity import Found, IdentitySource
from admitd.jwt.source import JwtIdentity, jwt_from_request

__all__ = ["ChainedIdentity"]


class ChainedIdentity:
    def __init__(self, sessions: IdentitySource, jwt: JwtIdentity) -> None:
        self.sessions = sessions
        self.jwt = jwt

    @property
    def cookie_name(self) -> str:
        return self.sessions.cookie_name

    def carries_own_bearer(self, ctx: RequestContext) -> bool:
        if jwt_from_request(ctx):
            return self.jwt.carries_own_bearer(ctx)
        return self.sessions.carries_own_bearer(ctx)

    async def lookup(self, ctx: RequestContext, now: float) -> Found:
        if jwt_from_request(ctx):
            return await self.jwt.lookup(ctx, now)
        return await self.sessions.lookup(ctx, now)

    async def flush_last_seen(self) -> None:
        await self.sessions.flush_last_seen()
