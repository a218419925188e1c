"""Device telemetry of a login (reported through the admin API) is assessed, sealed and remembered
only once the login is backed by MFA."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import yaml

from admitd.config import load_config
from admitd.core.context import RequestContext
from admitd.risk.gatherer import RiskGatherer
from admitd.risk.model import Signal
from admitd.runtime import Runtime, runtime_from_config
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import new_session_token
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


@pytest.fixture
async def runtime(
    pki: PkiSet, fresh_redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Runtime]:
    (tmp_path / "p.yaml").write_text("routes: [{name: h, public: true}]\n")
    config = {
        "policies": "p.yaml",
        "redis_url": fresh_redis_server.url,
        "dev_mode": True,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
    }
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(config))
    runtime = runtime_from_config(load_config(tmp_path / "admitd.yaml", environ={}))
    yield runtime
    await risk_of(runtime).close()
    await runtime.store.close()


def risk_of(runtime: Runtime) -> RiskGatherer:
    risk = runtime.engine.risk
    assert risk is not None
    return risk


async def test_login_telemetry_is_recorded_sealed_and_known_after_mfa(
    runtime: Runtime, fresh_redis_server: RedisServer
) -> None:
    risk = risk_of(runtime)
    now = time.time()
    _, ref = new_session_token("lena")
    session = make_session(
        ref.session_id, user_id="lena", roles={"viewer"}, device_id="laptop-7", now=now
    )
    await runtime.engine.store.create(ref, session)

    first = await risk.record_login(
        session, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "198.51.100.7", now
    )
    assert Signal.NEW_DEVICE in first.signals

    stored = await runtime.engine.store.get(ref)
    # A login without MFA vouches for nothing: the device stays unknown ...
    assert stored is not None and "d:laptop-7" not in stored.risk_state
    # ... until that session verifies a second factor from that device (the step-up page).
    assert await runtime.store.set_mfa(ref, now + 1, MfaMethod.TOTP)
    await risk.promote_pending(ref.tag, ref.session_id, "laptop-7")
    stored = await runtime.engine.store.get(ref)
    assert stored is not None and "d:laptop-7" in stored.risk_state  # read with the session
    headers = {
        "x-device-id": "laptop-7",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    }
    ctx = RequestContext(
        method="GET",
        scheme="https",
        host="h",
        path="/",
        headers=headers,
        source_address="198.51.100.7",
    )
    again = await risk.assess(ctx, stored, now + 5)
    assert Signal.NEW_DEVICE not in again.assessment.signals

    raw = redis.Redis.from_url(fresh_redis_server.url)
    telemetry_keys = [k for k in raw.scan_iter("admitd:*") if b"telemetry" in k]
    assert telemetry_keys, "no sealed telemetry record"
    value = raw.get(telemetry_keys[0]) or b""
    assert b"198.51.100.7" not in value and b"laptop-7" not in value  # sealed, not plain
    raw.close()


async def test_a_login_that_carried_mfa_makes_the_device_known(runtime: Runtime) -> None:
    now = time.time()
    _, ref = new_session_token("mo")
    session = make_session(
        ref.session_id, user_id="mo", roles={"viewer"}, device_id="laptop-8", now=now, mfa_ago=5
    )
    await runtime.engine.store.create(ref, session)
    await risk_of(runtime).record_login(session, "Mozilla/5.0 Firefox/140.0", "198.51.100.8", now)
    stored = await runtime.engine.store.get(ref)
    assert stored is not None and "d:laptop-8" in stored.risk_state
