"""TOTP state in a real Redis: replay and rate limits across replicas, sealed storage, outages."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
import redis.asyncio as aioredis

from admitd.envelope import Sealer, is_envelope_json
from admitd.errors import StoreUnavailable
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.config import MfaConfig
from admitd.mfa.ports import MfaResult
from admitd.mfa.state import RedisMfaState
from admitd.mfa.totp import TotpService
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from tests.integration.redis_server import RedisServer, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ORG = "acme"
CONFIG = MfaConfig(max_failures=3, lockout_seconds=60, backoff_base_seconds=0)


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    redis_server.start()
    made = [client_from_url(redis_server.url) for _ in range(3)]
    await made[0].flushdb()
    yield made
    for client in made:
        await client.aclose()


@pytest.fixture
def kms() -> MemoryKms:
    return MemoryKms.with_aliases(DEFAULT_ALIASES)


def replica(client: aioredis.Redis, kms: MemoryKms, config: MfaConfig = CONFIG) -> TotpService:
    """One admitd replica: its own Redis connection, the shared KMS keys."""
    return TotpService(RedisMfaState(client), Sealer(kms), MemorySessionStore(), config)


async def enrol(service: TotpService, user: str, now: float) -> str:
    secret = pyotp.parse_uri(
        (await service.begin_enrolment(user, ORG, now)).provisioning_uri
    ).secret
    assert await service.confirm_enrolment(user, ORG, pyotp.TOTP(secret).at(now), now) == "ok"
    return secret


async def test_a_code_accepted_by_one_replica_is_refused_by_another(
    clients: list[aioredis.Redis], kms: MemoryKms
) -> None:
    a, b = replica(clients[0], kms), replica(clients[1], kms)
    now = time.time()
    secret = await enrol(a, "u-replay", now - 30)
    code = pyotp.TOTP(secret).at(now)
    assert await a.verify("u-replay", ORG, code, now) is MfaResult.OK
    assert await b.verify("u-replay", ORG, code, now + 1) is MfaResult.REPLAYED
    next_code = pyotp.TOTP(secret).at(now + 30)
    assert await b.verify("u-replay", ORG, next_code, now + 30) is MfaResult.OK


async def test_replay_marks_expire_in_redis(clients: list[aioredis.Redis], kms: MemoryKms) -> None:
    service = replica(clients[0], kms)
    now = time.time()
    secret = await enrol(service, "u-ttl", now)
    keys = [k async for k in clients[2].scan_iter(match="*totp:used:*")]
    assert len(keys) == 1
    assert 0 < await clients[2].ttl(keys[0]) <= 120
    assert secret


async def test_failures_are_limited_across_replicas(
    clients: list[aioredis.Redis], kms: MemoryKms
) -> None:
    a, b = replica(clients[0], kms), replica(clients[1], kms)
    now = time.time()
    secret = await enrol(a, "u-brute", now - 30)
    for service in (a, b, a):
        assert await service.verify("u-brute", ORG, "000000", now) is MfaResult.INVALID
    code = pyotp.TOTP(secret).at(now)
    assert await b.verify("u-brute", ORG, code, now) is MfaResult.LOCKED_OUT
    later = pyotp.TOTP(secret).at(now + 60)
    assert await a.verify("u-brute", ORG, later, now + 60) is MfaResult.OK


async def test_backoff_is_shared(clients: list[aioredis.Redis], kms: MemoryKms) -> None:
    config = MfaConfig(max_failures=5, backoff_base_seconds=2)
    a, b = replica(clients[0], kms, config), replica(clients[1], kms, config)
    now = time.time()
    secret = await enrol(a, "u-slow", now - 30)
    assert await a.verify("u-slow", ORG, "000000", now) is MfaResult.INVALID
    code = pyotp.TOTP(secret).at(now)
    assert await b.verify("u-slow", ORG, code, now + 1) is MfaResult.LOCKED_OUT
    assert await b.verify("u-slow", ORG, code, now + 2) is MfaResult.OK


async def test_the_secret_in_redis_is_sealed(clients: list[aioredis.Redis], kms: MemoryKms) -> None:
    service = replica(clients[0], kms)
    now = time.time()
    active = await enrol(service, "u-sealed", now)
    uri = (await service.begin_enrolment("u-sealed", ORG, now)).provisioning_uri
    pending = pyotp.parse_uri(uri).secret
    raw = {key: await clients[2].get(key) async for key in clients[2].scan_iter(match="*totp:*")}
    sealed = [v for k, v in raw.items() if k.endswith(("totp:secret", "totp:pending"))]
    assert len(sealed) == 2 and all(is_envelope_json(v) for v in sealed)
    dump = "\n".join(f"{k}={v}" for k, v in raw.items())
    for secret in (active, pending):
        assert secret not in dump
        assert base64.b32decode(secret).hex() not in dump
    pending_key = next(k for k in raw if k.endswith("totp:pending"))
    assert 0 < await clients[2].ttl(pending_key) <= CONFIG.enrolment_ttl_seconds


async def test_confirm_marks_the_factor_in_the_redis_session_store(
    redis_server: RedisServer, clients: list[aioredis.Redis], kms: MemoryKms
) -> None:
    store = RedisSessionStore(client_from_url(redis_server.url), cache_ttl=0)
    service = TotpService(RedisMfaState(clients[0]), Sealer(kms), store, CONFIG)
    try:
        await enrol(service, "u-factor", time.time())
        assert await store.factors("u-factor") == {MfaMethod.TOTP}
    finally:
        await store.close()


async def test_an_outage_raises_store_unavailable_and_recovery_needs_no_restart(
    redis_server: RedisServer, clients: list[aioredis.Redis], kms: MemoryKms, tmp_path: Path
) -> None:
    service = replica(clients[0], kms)
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await service.verify("u-down", ORG, "123456", time.time())
    finally:
        redis_server.start()
    # Redis came back empty (no persistence): the user is simply not enrolled.
    assert await service.verify("u-down", ORG, "123456", time.time()) is MfaResult.NOT_ENROLLED
