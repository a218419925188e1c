"""Session state for the benchmark's privileged-route variants: a throwaway Redis, and a
fresh session per variant (the route's MFA max age is 15 minutes; a run lasts longer)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token

SESSION_PATH = "/reports/bench"
DEVICE_ID = "bench-device"  # the sessions' device; the client Envoy sends it (device risk)
SESSION_ROUTE = {
    "name": "reports",
    "match": {"path_prefix": "/reports/"},
    "identities": {"spiffe": ["spiffe://admitd.dev/user/*"]},
    "mfa_max_age": 900,
}


def start_redis(group: ProcessGroup, work: Path) -> str:
    """A redis-server of the benchmark's own on a free loopback port (stopped with the group)."""
    port = free_port()
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = group.start("redis", [*argv, "--dir", str(work)])
    wait_for_port(port, process=process, timeout=15)
    return f"redis://127.0.0.1:{port}/0"


def create_fresh_session(redis_url: str) -> str:
    """An analyst (a privileged role) who verified TOTP just now, on DEVICE_ID;
    returns the bearer token."""
    return asyncio.run(_create(redis_url))


async def _create(redis_url: str) -> str:
    store = RedisSessionStore(client_from_url(redis_url, timeout=2.0), cache_ttl=0)
    now = time.time()
    token, ref = new_session_token("bench-analyst")
    await store.set_factor("bench-analyst", MfaMethod.TOTP, active=True, at=now)
    session = Session(
        session_id=ref.session_id,
        user_id="bench-analyst",
        organisation="bench",
        roles=frozenset({"analyst"}),
        device_id=DEVICE_ID,
        created_at=now,
        last_seen_at=now,
        idle_timeout=3600,
        absolute_expires_at=now + 3600,
        mfa_verified_at=now,
        mfa_method=MfaMethod.TOTP,
    )
    await store.create(ref, session)
    await store.close()
    return token
