"""`admitd dev --oidc-issuer`: the dev config it writes signs a browser in at the real test IdP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from admitd.config import load_config
from admitd.devstack.stack import DevOidc, DevPorts, write_dev_config
from admitd.oidc import OidcProvider, OidcRoutes, add_oidc_routes
from admitd.oidc.provider import HttpClient
from admitd.oidc.state import STATE_COOKIE
from admitd.sessions import parse_session_token
from admitd.sessions.memory_store import MemorySessionStore
from admitd.web import ReturnToSigner
from tests.idp.harness import CLIENT_ID, CLIENT_SECRET, Idp, has_node, start_idp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_node(), reason="the test IdP (tests/idp) runs on Node.js"),
]

PORTS = DevPorts(https=18443)  # nothing listens there: the test client plays the web app
HOST = f"localhost:{PORTS.https}"


@pytest.fixture(scope="module")
def dev_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    # Registered as the IdP admin would, with the redirect URI the dev banner prints.
    callback = f"https://{HOST}/.admitd/oidc/callback"
    with start_idp(tmp_path_factory.mktemp("idp"), redirect_uris=[callback]) as idp:
        yield idp


async def test_the_dev_config_signs_in_at_the_real_idp(dev_idp: Idp, tmp_path: Path) -> None:
    secret = tmp_path / "client.secret"
    secret.write_text(CLIENT_SECRET)
    secret.chmod(0o600)
    oidc = DevOidc(dev_idp.issuer, CLIENT_ID, secret, organisation_claim="org")
    policies = Path(__file__).resolve().parents[2] / "policies"
    admitd_yaml, _ = write_dev_config(tmp_path, policies, PORTS, None, oidc)
    config = load_config(admitd_yaml)
    assert config.oidc is not None and config.web is not None

    http, store = HttpClient(), MemorySessionStore()
    signer = ReturnToSigner(config.web.signing_key)
    routes = OidcRoutes(
        provider=OidcProvider(config.oidc, http),
        store=store,
        signer=signer,
        sessions=config.sessions,
        origins=config.web.origins,
        clock=time.time,
    )
    app = web.Application()
    add_oidc_routes(app, routes)
    try:
        async with TestClient(TestServer(app), cookie_jar=DummyCookieJar()) as client:
            token = signer.sign(HOST, "/finance/ledger", time.time())
            started = await client.get(
                "/.admitd/oidc/start",
                params={"return_to": token},
                headers={"Host": HOST},
                allow_redirects=False,
            )
            assert started.status == 302
            back = await asyncio.to_thread(dev_idp.sign_in, started.headers["Location"], "carol")
            parts = urlsplit(back)
            assert f"{parts.scheme}://{parts.netloc}{parts.path}" == config.oidc.redirect_uri
            cookie = f"{STATE_COOKIE}={started.cookies[STATE_COOKIE].value}"
            done = await client.get(
                f"{parts.path}?{parts.query}",
                headers={"Host": HOST, "Cookie": cookie},
                allow_redirects=False,
            )
            assert done.status == 303 and done.headers["Location"] == "/finance/ledger"
            ref = parse_session_token(done.cookies[config.sessions.cookie_name].value)
            assert ref is not None
            session = await store.get(ref)
            assert session is not None
            assert (session.user_id, session.organisation) == ("carol", "globex")
            assert session.roles == {"finance"}
    finally:
        await http.close()
