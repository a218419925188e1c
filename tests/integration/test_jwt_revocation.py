"""revoke-user refuses that user's IdP tokens issued before it: a real Redis, a real IdP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import pytest

from admitd.core.decision import Decision, Reason
from admitd.engine import Engine
from admitd.identity_chain import ChainedIdentity
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.source import JwtIdentity
from admitd.sessions.identity import SessionIdentity
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from tests.idp.harness import API, Idp, has_node
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
    pytest.mark.skipif(not has_node(), reason="node/npm not installed"),
]

POLICY = """
routes:
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
"""


class Stack:
    def __init__(self, engine: Engine, store: RedisSessionStore, jwt: JwtIdentity) -> None:
        self.engine, self.store, self.jwt = engine, store, jwt

    async def check(self, pki: PkiSet, token: str) -> Decision:
        headers = {"authorization": f"Bearer {token}"}
        ctx = request("/reports/q1", cert=url_pem(pki.alice), headers=headers)
        decision, _ = await self.engine.check(ctx)
        return decision


async def listening(store: RedisSessionStore) -> None:
    deadline = time.monotonic() + 10
    while not store._listening:
        assert time.monotonic() < deadline, "invalidation feed not subscribed"
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(
    pki: PkiSet, idp: Idp, fresh_redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Stack]:
    (tmp_path / "p.yaml").write_text(POLICY)
    store = RedisSessionStore(client_from_url(fresh_redis_server.url), cache_ttl=30)
    store.start()
    await listening(store)
    engine = engine_for(pki.trust_bundle, tmp_path / "p.yaml", store=store)[0]
    issuer = IssuerConfig(
        issuer=idp.issuer, audiences=(API,), organisation_claim="org",
        role_map=MappingProxyType({}),
    )  # fmt: skip
    jwt = JwtIdentity(JwtConfig(issuers=(issuer,)), revocations=store)
    await jwt.start()
    engine.identity = ChainedIdentity(SessionIdentity(store, "__Host-admitd_session"), jwt)
    yield Stack(engine, store, jwt)
    await jwt.close()
    await store.close()


def token_for(idp: Idp, user: str) -> str:
    return str(idp.user_tokens(user, resource=API, scope="openid api:read")["access_token"])


async def test_a_token_issued_before_revoke_user_is_refused_one_after_admitted(
    stack: Stack, idp: Idp, pki: PkiSet
) -> None:
    before = token_for(idp, "alice")
    assert (await stack.check(pki, before)).reason is Reason.ALLOWED
    await stack.store.revoke_user("alice")
    refused = await stack.check(pki, before)  # the verified-token cache does not save it
    assert (refused.status, refused.reason) == (401, Reason.TOKEN_INVALID)
    assert refused.log_detail == "jwt: revoked"
    await asyncio.sleep(1.1)  # `iat` is whole seconds: the revocation's own second is refused
    after = token_for(idp, "alice")
    assert (await stack.check(pki, after)).reason is Reason.ALLOWED
    assert (await stack.check(pki, token_for(idp, "carol"))).reason is Reason.ALLOWED


async def test_another_replicas_revocation_reaches_a_cached_user(
    stack: Stack, idp: Idp, pki: PkiSet, fresh_redis_server: RedisServer
) -> None:
    token = token_for(idp, "alice")
    assert (await stack.check(pki, token)).reason is Reason.ALLOWED  # revocation time cached
    other = RedisSessionStore(client_from_url(fresh_redis_server.url), cache_ttl=30)
    try:
        await other.revoke_user("alice")  # another replica: only the pub/sub feed tells us
    finally:
        await other.close()
    deadline = time.monotonic() + 5
    while (decision := await stack.check(pki, token)).reason is Reason.ALLOWED:
        assert time.monotonic() < deadline, "the invalidation did not arrive"
        await asyncio.sleep(0.05)
    assert decision.reason is Reason.TOKEN_INVALID


async def test_a_repeated_token_costs_no_redis_call_while_the_feed_is_up(
    stack: Stack, idp: Idp, pki: PkiSet, fresh_redis_server: RedisServer
) -> None:
    token = token_for(idp, "alice")
    assert (await stack.check(pki, token)).reason is Reason.ALLOWED
    fresh_redis_server.stop()  # nothing to ask now: the cached answers must do
    assert (await stack.check(pki, token)).reason is Reason.ALLOWED
    # Once the feed is noticed down, the cache is off and the store cannot answer: 503.
    await until_not_listening(stack.store)
    refused = await stack.check(pki, token)
    assert (refused.status, refused.log_detail) == (503, "jwt: revocation unknown")


async def until_not_listening(store: RedisSessionStore) -> None:
    deadline = time.monotonic() + 10
    while store._listening:
        assert time.monotonic() < deadline, "the lost feed was not noticed"
        await asyncio.sleep(0.05)
