"""MFA freshness through a real Envoy and a real Redis: 428 for APIs, 302 for browsers, 200 when fresh."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: finance
    match: {path_prefix: /finance/}
    identities: any
    session: required
"""


def login(url: str, user: str, roles: set[str], mfa_ago: float | None) -> str:
    return create_session(url, user, roles, mfa_ago=mfa_ago, with_totp=True)


@pytest.fixture(scope="module")
def edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("mfa-edge")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, work / "policies.yaml", work, redis_url=redis_server.url)
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="module")
def alice(pki: PkiSet) -> tuple[Path, Path]:
    return pki.write_leaf("alice-mfa", pki.alice, pki.client_ca)


def test_fresh_session_is_admitted(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = login(redis_server.url, "fresh-fin", {"finance"}, mfa_ago=60)
    reply = edge.get("/finance/ledger", cert=alice, headers={"authorization": f"Bearer {token}"})
    assert reply.status == 200
    seen = reply.json()["headers"]
    assert isinstance(seen, dict)
    assert (seen["x-admitd-user"], seen["x-admitd-roles"]) == ("fresh-fin", "finance")


def test_stale_api_client_gets_428_with_rfc9470_challenge(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = login(redis_server.url, "stale-fin", {"finance"}, mfa_ago=7200)
    reply = edge.get("/finance/ledger", cert=alice, headers={"authorization": f"Bearer {token}"})
    assert reply.status == 428
    error = reply.json()["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["max_age"]) == ("mfa_step_up_required", 900)
    assert str(error["step_up_url"]).startswith("/.admitd/step-up")
    assert (
        reply.headers["www-authenticate"]
        == 'Bearer error="insufficient_user_authentication", max_age=900'
    )


def test_stale_browser_navigation_is_redirected(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = login(redis_server.url, "stale-adm", {"admin"}, mfa_ago=None)
    headers = {
        "cookie": f"__Host-admitd_session={token}",
        "sec-fetch-mode": "navigate",
        "accept": "text/html",
    }
    reply = edge.get("/finance/ledger?q=1", cert=alice, headers=headers)
    assert reply.status == 302
    assert reply.headers["location"].startswith("/.admitd/step-up")


def test_redis_outage_fails_closed_and_recovers(
    edge: EdgeStack, redis_server: RedisServer, alice: tuple[Path, Path]
) -> None:
    token = login(redis_server.url, "outage", {"viewer"}, mfa_ago=None)
    bearer = {"authorization": f"Bearer {token}"}
    assert edge.get("/finance/ledger", cert=alice, headers=bearer).status == 200
    redis_server.stop()
    try:
        deadline = time.monotonic() + 10
        while (reply := edge.get("/finance/ledger", cert=alice, headers=bearer)).status == 200:
            assert time.monotonic() < deadline, "still admitted with Redis down"
            time.sleep(0.1)
        assert reply.status == 503
        assert reply.json()["error"]["code"] == "session_store_unavailable"  # type: ignore[index]
        assert edge.get("/healthz").status == 200  # public routes keep serving
    finally:
        redis_server.start()
    # Redis came back empty: the old session is gone (401), and a new one works again.
    deadline = time.monotonic() + 10
    while (reply := edge.get("/finance/ledger", cert=alice, headers=bearer)).status == 503:
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.1)
    assert reply.status == 401
    fresh = login(redis_server.url, "outage", {"viewer"}, mfa_ago=None)
    assert (
        edge.get("/finance/ledger", cert=alice, headers={"authorization": f"Bearer {fresh}"}).status
        == 200
    )
