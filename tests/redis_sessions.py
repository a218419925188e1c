"""Create a session directly in a test's Redis, as admitd's admin API would (no gRPC needed)."""

from __future__ import annotations

import asyncio
import time

from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token
from tests.sessions import make_session


def create_session(
    url: str,
    user: str,
    roles: set[str],
    *,
    mfa_ago: float | None = None,
    with_totp: bool = False,
    device_id: str = "d1",
) -> str:
    """The bearer token of a fresh session; `mfa_ago` seconds since its TOTP verification."""

    async def create() -> str:
        store = RedisSessionStore(client_from_url(url), cache_ttl=0)
        now = time.time()
        token, ref = new_session_token(user)
        if with_totp:
            await store.set_factor(user, MfaMethod.TOTP, active=True, at=now)
        session = make_session(
            ref.session_id, user_id=user, roles=roles, device_id=device_id, now=now, mfa_ago=mfa_ago
        )
        await store.create(ref, session)
        await store.close()
        return token

    return asyncio.run(create())
