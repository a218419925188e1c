"""First-factor enrolment grants in a real Redis: stored with the session, used once across replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from admitd.sessions.model import Session
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.sessions import make_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


@pytest.fixture
async def replicas(fresh_redis_server: RedisServer) -> AsyncIterator[list[RedisSessionStore]]:
    stores = [RedisSessionStore(client_from_url(fresh_redis_server.url), cache_ttl=0) for _ in "ab"]
    yield stores
    for store in stores:
        await store.close()


def granted_session(ref: SessionRef, now: float, grant_for: float | None) -> Session:
    return make_session(
        ref.session_id, user_id="dee", roles={"viewer"}, now=now, enrolment_grant_for=grant_for
    )


async def test_the_grant_round_trips_and_is_taken_once_by_one_of_many(
    replicas: list[RedisSessionStore],
) -> None:
    now = time.time()
    _, ref = new_session_token("dee")
    await replicas[0].create(ref, granted_session(ref, now, 600))
    stored = await replicas[1].get(ref)
    assert stored is not None and stored.enrolment_grant_until == now + 600
    taken = await asyncio.gather(
        *(replicas[n % 2].take_enrolment_grant(ref, now) for n in range(20))
    )
    assert taken.count(True) == 1
    after = await replicas[0].get(ref)
    assert after is not None and after.enrolment_grant_until is None
    assert dataclasses.replace(after, enrolment_grant_until=now + 600) == stored


@pytest.mark.parametrize("until", [None, "expired"], ids=["no-grant", "expired"])
async def test_no_grant_or_an_expired_one_is_not_taken(
    replicas: list[RedisSessionStore], until: str | None
) -> None:
    now = time.time()
    _, ref = new_session_token("dee")
    await replicas[0].create(ref, granted_session(ref, now, None if until is None else 0))
    assert not await replicas[0].take_enrolment_grant(ref, now)
    stored = await replicas[1].get(ref)
    assert stored is not None and stored.enrolment_grant_until is None  # removed either way


async def test_a_revoked_session_has_no_grant(replicas: list[RedisSessionStore]) -> None:
    now = time.time()
    _, ref = new_session_token("dee")
    await replicas[0].create(ref, granted_session(ref, now, 600))
    assert await replicas[1].revoke(ref)
    assert not await replicas[0].take_enrolment_grant(ref, now)
    assert await replicas[0].get(ref) is None  # HDEL did not bring back a husk
