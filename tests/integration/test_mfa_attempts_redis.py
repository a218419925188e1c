"""Concurrent second-factor guesses against two replicas sharing one real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyotp
import pytest
import redis.asyncio as aioredis

from admitd.envelope import Sealer
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa import passkeys as passkeys_module
from admitd.mfa import totp as totp_module
from admitd.mfa.config import MfaConfig
from admitd.mfa.passkey_store import RedisPasskeyStore
from admitd.mfa.passkeys import PasskeyPolicy, PasskeyService
from admitd.mfa.ports import MfaResult
from admitd.mfa.state import RedisMfaState
from admitd.mfa.totp import TotpService
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.unit.test_passkeys import ORIGIN, RP_ID, SoftAuthenticator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ORG = "acme"
GUESSES = 40


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    made = [client_from_url(redis_server.url) for _ in range(2)]
    await made[0].flushdb()
    for client in made:
        # Open the connections a burst needs up front, as a busy replica has them: else
        # the first guesses finish while the others still connect, and no race is tried.
        await asyncio.gather(*(client.ping() for _ in range(GUESSES)))
    yield made
    for client in made:
        await client.aclose()


class Counted:
    """Wraps a module-level function and counts the calls: how many guesses were evaluated."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner, self.calls = inner, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner(*args, **kwargs)


def totp_replicas(clients: list[aioredis.Redis], config: MfaConfig) -> list[TotpService]:
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    return [TotpService(RedisMfaState(c), sealer, MemorySessionStore(), config) for c in clients]


async def enrol(service: TotpService, user: str, now: float) -> pyotp.TOTP:
    uri = (await service.begin_enrolment(user, ORG, now)).provisioning_uri
    totp = pyotp.TOTP(pyotp.parse_uri(uri).secret)
    assert await service.confirm_enrolment(user, ORG, totp.at(now), now) is MfaResult.OK
    return totp


async def guess_at_once(replicas: list[TotpService], user: str, now: float) -> list[MfaResult]:
    wrong = [f"{n:06d}" for n in range(GUESSES)]
    return await asyncio.gather(
        *(replicas[n % 2].verify(user, ORG, code, now) for n, code in enumerate(wrong))
    )


@pytest.mark.parametrize("max_failures", [1, 5])
async def test_concurrent_wrong_codes_evaluate_at_most_max_failures(
    clients: list[aioredis.Redis], monkeypatch: pytest.MonkeyPatch, max_failures: int
) -> None:
    # No back-off: only the failure count can stop the burst.
    config = MfaConfig(max_failures=max_failures, lockout_seconds=600, backoff_base_seconds=0)
    replicas = totp_replicas(clients, config)
    now = time.time()
    totp = await enrol(replicas[0], "u-burst", now - 60)
    evaluated = Counted(totp_module.matching_step)
    monkeypatch.setattr(totp_module, "matching_step", evaluated)

    results = await guess_at_once(replicas, "u-burst", now)

    assert evaluated.calls == max_failures
    assert results.count(MfaResult.LOCKED_OUT) == GUESSES - max_failures
    # Locked out: the right code is refused without being tried, on either replica.
    for replica in replicas:
        assert await replica.verify("u-burst", ORG, totp.at(now), now + 1) is MfaResult.LOCKED_OUT
    assert evaluated.calls == max_failures


async def test_with_back_off_a_burst_gets_one_guess(
    clients: list[aioredis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas = totp_replicas(clients, MfaConfig())  # back-off 1 s after the first failure
    now = time.time()
    totp = await enrol(replicas[0], "u-slow-burst", now - 60)
    evaluated = Counted(totp_module.matching_step)
    monkeypatch.setattr(totp_module, "matching_step", evaluated)

    results = await guess_at_once(replicas, "u-slow-burst", now)

    assert evaluated.calls == 1
    assert results.count(MfaResult.INVALID) == 1
    assert await replicas[1].verify("u-slow-burst", ORG, totp.at(now), now + 0.5) == "locked_out"
    assert await replicas[1].verify("u-slow-burst", ORG, totp.at(now), now + 1) is MfaResult.OK


async def test_a_burst_of_correct_codes_is_accepted_once(clients: list[aioredis.Redis]) -> None:
    config = MfaConfig(max_failures=5, backoff_base_seconds=0)
    replicas = totp_replicas(clients, config)
    now = time.time()
    totp = await enrol(replicas[0], "u-race", now - 60)
    code = totp.at(now)
    results = await asyncio.gather(
        *(replicas[n % 2].verify("u-race", ORG, code, now) for n in range(10))
    )
    assert results.count(MfaResult.OK) == 1


def passkey_replicas(
    clients: list[aioredis.Redis], max_failures: int
) -> tuple[list[PasskeyService], RedisPasskeyStore]:
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    policy = PasskeyPolicy(rp_id=RP_ID, rp_name="e2e", origins=(ORIGIN,), max_failures=max_failures)
    stores = [RedisPasskeyStore(c) for c in clients]
    sessions = MemorySessionStore()
    return [PasskeyService(s, sealer, sessions, policy) for s in stores], stores[0]


async def test_concurrent_passkey_ceremonies_share_one_atomic_limit(
    clients: list[aioredis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    (a, b), _ = passkey_replicas(clients, max_failures=2)
    now = time.time()
    good = SoftAuthenticator()
    options = await a.registration_options("alice", "alice", now)
    assert await a.register("alice", ORG, good.create(options), now) is MfaResult.OK
    # One failure left before the lockout.
    bad = SoftAuthenticator(user_verified=False, credential_id=good.credential_id, key=good.key)
    bad.user_handle = good.user_handle
    options = await a.authentication_options("alice", now)
    assert await a.authenticate("alice", ORG, bad.get(options), now) is MfaResult.INVALID
    register_checks = Counted(passkeys_module.verify_registration_response)
    assertion_checks = Counted(passkeys_module.verify_authentication_response)
    monkeypatch.setattr(passkeys_module, "verify_registration_response", register_checks)
    monkeypatch.setattr(passkeys_module, "verify_authentication_response", assertion_checks)

    # Both ceremonies at once, on two replicas: each has its own single-use challenge.
    stranger = SoftAuthenticator(credential_id=b"stranger", user_verified=False)
    register_options = await a.registration_options("alice", "alice", now)
    sign_in_options = await b.authentication_options("alice", now)
    results = await asyncio.gather(
        a.register("alice", ORG, stranger.create(register_options), now),
        b.authenticate("alice", ORG, bad.get(sign_in_options), now),
    )

    assert register_checks.calls + assertion_checks.calls == 1
    assert results == [MfaResult.LOCKED_OUT, MfaResult.LOCKED_OUT]
    options = await b.authentication_options("alice", now + 1)
    assert await b.authenticate("alice", ORG, good.get(options), now + 1) is MfaResult.LOCKED_OUT


async def test_passkey_registrations_do_not_use_up_the_limit(
    clients: list[aioredis.Redis],
) -> None:
    (a, _), store = passkey_replicas(clients, max_failures=2)
    now = time.time()
    for n in range(3):  # successes clear what their reservation counted
        authenticator = SoftAuthenticator(credential_id=f"credential-{n}".encode())
        options = await a.registration_options("carol", "carol", now)
        assert await a.register("carol", ORG, authenticator.create(options), now) == "ok"
    assert len(await store.credential_ids("carol")) == 3
