"""A device-risk refusal holds on retry; only an admission or an MFA verification moves history.

Runtime wired from a config (real Redis, dev KMS), Checks through `Engine.check`. A
completed step-up is what the step-up page does on success: the session's MFA time is
set, and the verifying device's pending sighting is promoted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
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
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session

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
  # certificate-only, but one organisation's variant wants a session: looked up, never judged
  - name: docs
    match: {path_prefix: /docs/}
    identities: any
    organisations:
      partner: {session: required, roles: [admin]}
  # tolerates more risk (a read-only status page)
  - name: status
    match: {path_prefix: /status/}
    identities: any
    session: optional
    risk: {step_up_at: critical, deny_at: critical}
"""
LONDON = {"x-geo-latitude": "51.5072", "x-geo-longitude": "-0.1276", "x-geo-country": "GB"}
SYDNEY = {"x-geo-latitude": "-33.8688", "x-geo-longitude": "151.2093", "x-geo-country": "AU"}
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"


@dataclass
class User:
    token: str
    ref: SessionRef


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
    session = make_session(ref.session_id, user_id=name, roles={"viewer"}, device_id="laptop-1")
    await runtime.store.create(ref, session)
    return User(token, ref)


async def step_up(runtime: Runtime, user: User, device: str) -> None:
    """What the step-up page does after a verified code from `device`."""
    assert await runtime.store.set_mfa(user.ref, time.time(), MfaMethod.TOTP)
    assert runtime.engine.risk is not None
    await runtime.engine.risk.promote_pending(user.ref.tag, user.ref.session_id, device)


async def check(
    runtime: Runtime,
    pki: PkiSet,
    user: User,
    device: str,
    place: dict[str, str],
    path: str = "/app/home",
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
        path=path,
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

    await step_up(runtime, user, "phone-9")
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
    await step_up(runtime, user, "laptop-1")
    assert await check(runtime, pki, user, "laptop-1", SYDNEY) is Reason.ALLOWED


async def test_a_verification_of_another_session_promotes_nothing(
    runtime: Runtime, pki: PkiSet
) -> None:
    victim = await new_user(runtime, "vera")
    assert await check(runtime, pki, victim, "laptop-1", LONDON) is Reason.ALLOWED
    assert await check(runtime, pki, victim, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
    # The same user verifies in a different session: the refused sighting stays pending.
    other = await new_user(runtime, "vera")
    await step_up(runtime, other, "phone-9")
    assert await check(runtime, pki, victim, "phone-9", SYDNEY) is Reason.RISK_CRITICAL


async def test_the_victims_step_up_does_not_vouch_for_the_attackers_device(
    runtime: Runtime, pki: PkiSet
) -> None:
    session = await new_user(runtime, "vic")
    assert await check(runtime, pki, session, "laptop-1", LONDON) is Reason.ALLOWED
    # A stolen cookie used from phone-9 in Sydney is refused ...
    assert await check(runtime, pki, session, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
    # ... and the victim then verifies MFA in that same session, from laptop-1.
    await step_up(runtime, session, "laptop-1")
    assert await check(runtime, pki, session, "phone-9", SYDNEY) is Reason.RISK_CRITICAL


async def test_a_route_that_does_not_judge_risk_vouches_for_nothing(
    runtime: Runtime, pki: PkiSet
) -> None:
    user = await new_user(runtime, "doc")
    assert await check(runtime, pki, user, "laptop-1", LONDON) is Reason.ALLOWED
    assert await check(runtime, pki, user, "phone-9", SYDNEY) is Reason.RISK_CRITICAL
    # The docs route looks the session up (a variant may need it) but judges no risk.
    assert await check(runtime, pki, user, "phone-9", SYDNEY, "/docs/x") is Reason.ALLOWED
    assert await check(runtime, pki, user, "phone-9", SYDNEY) is Reason.RISK_CRITICAL


async def test_a_route_with_laxer_risk_thresholds_vouches_for_nothing(
    runtime: Runtime, pki: PkiSet
) -> None:
    user = await new_user(runtime, "stan")
    assert await check(runtime, pki, user, "laptop-1", LONDON) is Reason.ALLOWED
    assert await check(runtime, pki, user, "laptop-1", SYDNEY) is Reason.MFA_STEP_UP_REQUIRED
    # The status page admits a high risk level without MFA ...
    assert await check(runtime, pki, user, "laptop-1", SYDNEY, "/status/") is Reason.ALLOWED
    # ... which says nothing about the routes that would not have.
    assert await check(runtime, pki, user, "laptop-1", SYDNEY) is Reason.MFA_STEP_UP_REQUIRED
