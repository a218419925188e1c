"""JWKS fetching over real HTTP (aiohttp server on loopback): start, rotation, outage, slow IdP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from admitd.core.identity import UserState
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.metrics import IdpMetrics
from admitd.jwt.source import JwtIdentity
from tests.unit.helpers import request
from tests.unit.jwt_tokens import AUDIENCE, NOW, Idp

pytestmark = pytest.mark.integration


class Server:
    def __init__(self, idp: Idp) -> None:
        self.idp, self.up, self.delay, self.hits = idp, True, 0.0, 0
        self.url = ""

    async def jwks(self, _: web.Request) -> web.Response:
        self.hits += 1
        await asyncio.sleep(self.delay)
        if not self.up:
            return web.Response(status=503)
        return web.json_response(self.idp.jwks())

    async def metadata(self, _: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "jwks_uri": self.url + "/jwks"})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server(Idp())
    app = web.Application()
    app.router.add_get("/jwks", state.jwks)
    app.router.add_get("/.well-known/openid-configuration", state.metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def source_for(
    server: Server, timeout: float = 1.0, metrics: IdpMetrics | None = None
) -> JwtIdentity:
    issuer = IssuerConfig(
        issuer=server.url, audiences=(AUDIENCE,), organisation_claim="org",
        role_map=MappingProxyType({}),
    )  # fmt: skip
    config = JwtConfig(issuers=(issuer,), fetch_timeout_seconds=timeout)
    return JwtIdentity(config, metrics=metrics)


async def state_of(source: JwtIdentity, token: str) -> UserState:
    found = await source.lookup(request(headers={"authorization": f"Bearer {token}"}), NOW)
    return found.user.state


async def test_discovery_start_and_rotation(server: Server) -> None:
    source = source_for(server)
    try:
        await source.start()
        assert await state_of(source, server.idp.token(iss=server.url)) is UserState.ACTIVE
        server.idp.published = [Idp("rsa-2").rsa, *server.idp.published]
        rotated = server.idp.published[0]
        assert await state_of(source, server.idp.token(rotated, iss=server.url)) is (
            UserState.ACTIVE
        )
        assert server.hits == 2
    finally:
        await source.close()


async def test_an_idp_down_at_start_is_retried_on_demand(server: Server) -> None:
    server.up = False
    source = source_for(server)
    try:
        await source.start()  # logged, admitd starts
        token = server.idp.token(iss=server.url)
        assert await state_of(source, token) is UserState.UNAVAILABLE
        server.up = True
        await asyncio.sleep(0)  # rate limited: within the interval the IdP is not asked again
        assert await state_of(source, token) is UserState.UNAVAILABLE
        source.keys[server.url]._last_attempt = None  # the interval passed
        assert await state_of(source, token) is UserState.ACTIVE
    finally:
        await source.close()


async def test_a_slow_idp_blocks_a_check_only_for_the_bounded_wait(server: Server) -> None:
    source = source_for(server, timeout=0.2)
    try:
        await source.start()
        server.delay = 0.6
        stranger = Idp("rsa-new")
        server.idp.published = [stranger.rsa, *server.idp.published]
        loop = asyncio.get_running_loop()
        started = loop.time()
        token = stranger.token(iss=server.url)
        states = await asyncio.gather(*(state_of(source, token) for _ in range(5)))
        assert loop.time() - started < 0.5
        assert set(states) == {UserState.UNKNOWN}  # not yet known: refused, never blocked
        assert server.hits == 2  # single-flight: five Checks, one fetch
        await asyncio.sleep(0.6)  # the fetch went on; the next Check finds the key
        assert await state_of(source, token) is UserState.ACTIVE
    finally:
        await source.close()


async def test_every_fetch_is_counted_by_issuer_and_outcome(server: Server) -> None:
    registry = CollectorRegistry()
    source = source_for(server, metrics=IdpMetrics(registry))

    def fetches(outcome: str) -> float | None:
        labels = {"issuer": server.url, "outcome": outcome}
        return registry.get_sample_value("admitd_jwks_fetches_total", labels)

    try:
        await source.start()
        assert (fetches("ok"), fetches("error")) == (1.0, None)
        server.up = False
        stranger = Idp("rsa-new").token(iss=server.url)  # an unknown kid: fetch on demand
        assert await state_of(source, stranger) is UserState.UNKNOWN
        assert (fetches("ok"), fetches("error")) == (1.0, 1.0)
        assert await state_of(source, stranger) is UserState.UNKNOWN  # within the interval
        assert (fetches("error"), fetches("rate_limited")) == (1.0, 1.0)
        assert server.hits == 2  # what was counted is what reached the IdP
    finally:
        await source.close()
