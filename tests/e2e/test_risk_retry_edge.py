"""A device-risk refusal through the real Envoy holds when the client simply retries.

Regression: the refused attempt used to be written into the user's history, so the
same request a moment later was rated low and admitted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import parse_session_token
from tests.e2e.stack import EdgeStack, start_edge
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet
from tests.redis_sessions import create_session

pytestmark = [
    pytest.mark.e2e,
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


@pytest.fixture(scope="module")
def edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("risk-retry")
    (work / "policies.yaml").write_text(POLICY)
    extra = {"dev_mode": True, "risk": {"trusted_geo_headers": True}}
    stack = start_edge(
        pki, work / "policies.yaml", work, redis_url=redis_server.url, extra_config=extra
    )
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="module")
def alice(pki: PkiSet) -> tuple[Path, Path]:
    return pki.write_leaf("alice-retry", pki.alice, pki.client_ca)


def attempt(
    edge: EdgeStack, cert: tuple[Path, Path], token: str, device: str, place: dict[str, str]
) -> int:
    headers = {"authorization": f"Bearer {token}", "x-device-id": device, "user-agent": "curl/8"}
    status = edge.get("/app/home", cert=cert, headers={**headers, **place}).status
    time.sleep(0.3)  # whatever admitd records after the decision has landed by now
    return status


def verify_mfa(url: str, token: str) -> None:
    """What a completed step-up leaves in Redis: the session's MFA time is now."""

    async def mark() -> None:
        store = RedisSessionStore(client_from_url(url), cache_ttl=0)
        ref = parse_session_token(token)
        assert ref is not None
        assert await store.set_mfa(ref, time.time(), MfaMethod.TOTP)
        await store.close()

    asyncio.run(mark())


def test_critical_refusal_is_refused_again_on_every_retry(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = create_session(redis_server.url, "cris", {"viewer"}, device_id="laptop-1")
    assert attempt(edge, alice, token, "laptop-1", LONDON) == 200
    # New device + London -> Sydney in seconds: critical.
    assert [attempt(edge, alice, token, "phone-9", SYDNEY) for _ in range(4)] == [403] * 4


def test_high_risk_step_up_is_asked_again_until_mfa_is_fresh(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = create_session(redis_server.url, "hugo", {"viewer"}, device_id="laptop-1")
    assert attempt(edge, alice, token, "laptop-1", LONDON) == 200
    assert [attempt(edge, alice, token, "laptop-1", SYDNEY) for _ in range(4)] == [428] * 4
    verify_mfa(redis_server.url, token)
    assert attempt(edge, alice, token, "laptop-1", SYDNEY) == 200
