"""RedisSessionStore against a real Redis: life cycle, cross-replica invalidation, outage, recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admitd.errors import StoreUnavailable
from admitd.sessions.model import MfaMethod, Session, user_from_session
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.integration.redis_cluster import RedisCluster3
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.sessions import make_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


async def replica(server: RedisServer, cache_ttl: float = 30.0) -> RedisSessionStore:
    store = RedisSessionStore(client_from_url(server.url), cache_ttl=cache_ttl)
    store.start()
    await eventually(lambda: store._listening)
    return store


async def eventually(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def replicas(
    fresh_redis_server: RedisServer,
) -> AsyncIterator[tuple[RedisSessionStore, RedisSessionStore]]:
    first, second = await replica(fresh_redis_server), await replica(fresh_redis_server)
    yield first, second
    await first.close()
    await second.close()


def session_for(ref: SessionRef, user: str, roles: set[str]) -> Session:
    return make_session(ref.session_id, user_id=user, roles=roles)


async def test_life_cycle(replicas: tuple[RedisSessionStore, RedisSessionStore]) -> None:
    store, _ = replicas
    _, ref = new_session_token("ana")
    await store.create(ref, session_for(ref, "ana", {"analyst"}))
    await store.set_factor("ana", MfaMethod.TOTP, active=True, at=time.time())
    assert await store.set_mfa(ref, 1_800_000_000.0, MfaMethod.TOTP)
    session = await store.get(ref)
    assert session is not None and session.mfa_verified_at == 1_800_000_000.0
    assert session.factors == frozenset({MfaMethod.TOTP})
    assert [s.session_id for s in await store.list_user("ana")] == [ref.session_id]
    assert await store.revoke(ref)
    assert await store.get(ref) is None
    assert not await store.set_mfa(ref, time.time(), MfaMethod.TOTP)  # revoked stays revoked


async def test_the_factors_an_idp_vouched_for_are_kept_apart_from_enrolments(
    replicas: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    store, other = replicas
    _, ref = new_session_token("ida")
    vouched = dataclasses.replace(
        session_for(ref, "ida", {"admin"}), idp_factors=frozenset({MfaMethod.PASSKEY})
    )
    await store.create(ref, vouched)
    session = await other.get(ref)
    assert session is not None and session.idp_factors == {MfaMethod.PASSKEY}
    assert session.factors == frozenset()  # no enrolment at admitd: revoking one leaves it
    assert user_from_session(session).factors == {MfaMethod.PASSKEY}


async def test_revocation_reaches_the_other_replicas_cache(
    replicas: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    writer, reader = replicas
    _, ref = new_session_token("bob")
    await writer.create(ref, session_for(ref, "bob", {"viewer"}))
    assert await reader.get(ref) is not None  # now cached by the reader
    assert await writer.revoke_user("bob") == 1
    await eventually(lambda: ref not in reader._cache)
    assert await reader.get(ref) is None


async def test_mfa_refresh_reaches_the_other_replica(
    replicas: tuple[RedisSessionStore, RedisSessionStore],
) -> None:
    writer, reader = replicas
    _, ref = new_session_token("cy")
    await writer.create(ref, session_for(ref, "cy", {"admin"}))
    assert (await reader.get(ref)).mfa_verified_at is None  # type: ignore[union-attr]
    await writer.set_mfa(ref, 1_800_000_123.0, MfaMethod.PASSKEY)
    await eventually(lambda: ref not in reader._cache)
    session = await reader.get(ref)
    assert session is not None and session.mfa_method is MfaMethod.PASSKEY


async def test_outage_fails_closed_then_recovers(fresh_redis_server: RedisServer) -> None:
    store = await replica(fresh_redis_server)
    try:
        _, ref = new_session_token("dee")
        await store.create(ref, session_for(ref, "dee", {"viewer"}))
        assert await store.get(ref) is not None
        fresh_redis_server.stop()
        # Neither the cached copy nor a guess: the store says it cannot answer.
        await eventually(lambda: not store._listening)
        with pytest.raises(StoreUnavailable):
            await store.get(ref)
        fresh_redis_server.start()  # an empty Redis: the session is gone, and the store must say so
        await eventually(lambda: store._listening)
        assert await store.get(ref) is None
        await store.create(ref, session_for(ref, "dee", {"viewer"}))
        assert await store.get(ref) is not None
    finally:
        await store.close()


async def test_redis_cluster_life_cycle_and_invalidation(tmp_path: Path) -> None:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli not installed")
    with RedisCluster3(tmp_path / "cluster") as cluster:
        writer = RedisSessionStore(client_from_url(cluster.url), cache_ttl=30)
        reader = RedisSessionStore(client_from_url(cluster.url), cache_ttl=30)
        for store in (writer, reader):
            store.start()
            await eventually(lambda store=store: store._listening)  # type: ignore[misc]
        try:
            refs = []
            for n in range(6):  # several users: their keys land on different slots and nodes
                _, ref = new_session_token(f"user-{n}")
                await writer.create(ref, session_for(ref, f"user-{n}", {"viewer"}))
                refs.append(ref)
            assert all([await reader.get(ref) is not None for ref in refs])
            assert await writer.revoke_user("user-3") == 1
            await eventually(lambda: refs[3] not in reader._cache)
            assert await reader.get(refs[3]) is None
            assert await reader.get(refs[4]) is not None
            assert [s.user_id for s in await reader.list_user("user-5")] == ["user-5"]
        finally:
            await writer.close()
            await reader.close()
