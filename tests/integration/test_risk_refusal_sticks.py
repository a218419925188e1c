"""A device-risk refusal holds on retry; only an admission or an MFA verification moves history.

Runtime wired from a config (real Redis, dev KMS), Checks through `Engine.check`,
MFA verified through the same store the step-up pages and the admin API use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest
import redis
import yaml

from admitd.config import load_config
from admitd.core.context import RequestContext
from admitd.core.decision import Reason
from admitd.runtime import Runtime, runtime_from_config
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet, url_pem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

POLICY = """
routes:
  - name: app
    match: {path_prefix: /app/}
    identities: any
    session: required
"""
LONDON = {"x-geo-latitude": "51.5072", "x-geo-longitude": "-0.1276", "x-geo-country": "GB"}
SYDNEY = {"x-geo-latitude": "-33.8688", "x-geo-longitude": "151.2093", "x-geo-country": "AU"}
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


@dataclass
class User:
    token: str
    ref: SessionRef


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def runtime(pki: PkiSet, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Runtime]:
    redis.Redis.from_url(redis_server.url).flushdb()
    (tmp_path / "p.yaml").write_text(POLICY)
    config = {
        "policies": "p.yaml",
        "redis_url": redis_server.url,
        "dev_mode": True,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "risk": {"trusted_geo_headers": True},
    }
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(config))
    runtime = runtime_from_config(load_config(tmp_path / "admitd.yaml", environ={}))
    yield runtime
    assert runtime.engine.risk is not None
    await runtime.engine.risk.close()
    await runtime.store.close()


async def new_user(runtime: Runtime, name: str) -> User:
    token, ref = new_session_token(name)
    now = time.time()
    session = Session(
        ref.session_id, name, "acme", frozenset({"viewer"}), "laptop-1", now, now, 600, now + 3600
    )
    await runtime.store.create(ref, session)
    return User(token, ref)


async def check(
    runtime: Runtime, pki: PkiSet, user: User, device: str, place: dict[str, str]
) -> Reason:
    headers = {
        "x-forwarded-proto": "https",
        "authorization": f"Bearer {user.token}",
        "x-device-id": device,
        "user-agent": UA,
        **place,
    }
    ctx = RequestContext(
        method="GET",
        scheme="https",
        host="app.test",
        path="/app/home",
        headers=MappingProxyType(headers),
        source_address="198.51.100.7",
        peer_certificate=url_pem(pki.alice),
    )
    decision, _ = await runtime.engine.check(ctx)
    await asyncio.sleep(0.2)  # let the background recording (if any) land
    return decision.reason


async def test_critical_refusal_holds_on_retry_until_the_session_verifies_mfa(
    runtime: Runtime, pki: PkiSet
) -> None:
    user = await new_user(runtime, "ria")
    assert await check(runtime, pki, user, "laptop-1", LONDON) is Reason.ALLOWED  # medium
    # A new device in Sydney minutes after London: new device + impossible travel.
    for _ in range(4):
        assert await check(runtime, pki, user, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
    # The refused attempts were recorded, sealed, but are not part of the history.
    raw = redis.Redis.from_url(runtime.config.redis_url or "")
    assert [k for k in raw.scan_iter("admitd:*telemetry:*")], "refused attempt not recorded"
    raw.close()

    assert await runtime.store.set_mfa(user.ref, time.time(), MfaMethod.TOTP)
    # The verification vouches for the device and place its session was refused at.
    assert await check(runtime, pki, user, "phone-9", SYDNEY) is Reason.ALLOWED


async def test_high_risk_step_up_holds_on_retry_until_verified(
    runtime: Runtime, pki: PkiSet
) -> None:
    user = await new_user(runtime, "hal")
    assert await check(runtime, pki, user, "laptop-1", LONDON) is Reason.ALLOWED
    for _ in range(4):  # impossible travel on the known device: high, step up
        reason = await check(runtime, pki, user, "laptop-1", SYDNEY)
        assert reason is Reason.MFA_STEP_UP_REQUIRED
    assert await runtime.store.set_mfa(user.ref, time.time(), MfaMethod.TOTP)
    assert await check(runtime, pki, user, "laptop-1", SYDNEY) is Reason.ALLOWED


async def test_a_verification_of_another_session_promotes_nothing(
    runtime: Runtime, pki: PkiSet
) -> None:
    victim = await new_user(runtime, "vera")
    assert await check(runtime, pki, victim, "laptop-1", LONDON) is Reason.ALLOWED
    assert await check(runtime, pki, victim, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
    # The same user verifies in a different session: the refused sighting stays pending.
    other = await new_user(runtime, "vera")
    assert await runtime.store.set_mfa(other.ref, time.time(), MfaMethod.TOTP)
    assert await check(runtime, pki, victim, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
