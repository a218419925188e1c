"""Redis's connection limit reached: other clients hold every slot (`maxclients`), and
admitd's connections are dropped, so every reconnect is refused ("max number of clients
reached"). While it lasts a session is revoked through a connection the test kept: admitd,
which lost its invalidation feed with its connections, must not admit it from a cache,
then or after the limit is lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import redis.asyncio as redis

from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import parse_session_token
from tests.redis_sessions import create_session
from tests.reliability.fault_run import Run
from tests.reliability.load import Probe
from tests.reliability.population import bearer

__all__ = ["redis_connection_limit"]

OURS = ("rel-control", "rel-hog")  # client names of the test's own connections
_HOGS = 8  # connections "other clients" hold
_CONTROL = 4  # the test's own pooled connections (the revocation's pipeline needs one)
_DEFAULT_MAXCLIENTS = 10_000


async def redis_connection_limit(run: Run) -> None:
    stack = run.stack
    token = await asyncio.to_thread(
        create_session, stack.redis_url, "limit-victim", {"viewer"}, device_id="laptop-1"
    )
    victim = Probe("session-revoked-at-limit", "session", "/app/", run.creds.alice, bearer(token))
    run.mix.add([victim])
    control = _client(stack.redis.port, OURS[0])
    hogs = [_client(stack.redis.port, OURS[1], single=True) for _ in range(_HOGS)]
    await asyncio.gather(*(control.ping() for _ in range(_CONTROL)))
    await asyncio.gather(*(hog.ping() for hog in hogs))
    await asyncio.sleep(run.size.warm)
    try:
        dropped = await _reach_the_limit(control)
        run.notes.append(f"maxclients {_CONTROL + _HOGS}: {dropped} admitd connections dropped")
        await asyncio.sleep(min(0.5, run.size.hold / 2))  # admitd has seen its feed go
        victim.valid_until = time.monotonic()
        await _revoke(control, token)
        victim.refused_from = time.monotonic()
        refused = await _new_connection_refused(stack.redis.port)
        run.facts["new_connection_refused"] = float(refused)
        await asyncio.sleep(max(0.0, run.size.hold - 0.5))
        await control.config_set("maxclients", _DEFAULT_MAXCLIENTS)
    finally:
        for hog in hogs:
            await hog.aclose()
        await control.aclose()
    run.fault_end = time.monotonic()


def _client(port: int, name: str, *, single: bool = False) -> redis.Redis:
    return redis.Redis(
        port=port,
        decode_responses=True,
        client_name=name,
        single_connection_client=single,
        socket_timeout=5,
    )


async def _reach_the_limit(control: redis.Redis) -> int:
    """maxclients down to the connections the test holds, then admitd's dropped: each of
    its reconnects is now refused. Returns how many of admitd's were dropped."""
    await control.config_set("maxclients", _CONTROL + _HOGS)
    theirs = [c for c in await control.client_list() if c.get("name") not in OURS]
    for connection in theirs:
        await control.execute_command("CLIENT", "KILL", "ID", connection["id"])
    return len(theirs)


async def _revoke(control: redis.Redis, token: str) -> None:
    """admitd's own revocation (write, then publish), over the test's held connections."""
    ref = parse_session_token(token)
    assert ref is not None
    store = RedisSessionStore(control, cache_ttl=0)
    assert await store.revoke(ref)


async def _new_connection_refused(port: int) -> bool:
    """A fresh connection's first command is refused: the limit is really reached."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):  # Redis closes it after the error
            await writer.wait_closed()
    return reply.startswith(b"-ERR max number of clients reached")
