"""The OIDC sign-in's own pages through Envoy, checked by axe-core and the keyboard: the 400
of a callback without its state, and the 503 of an identity provider that cannot be reached
(an issuer on a closed loopback port; admitd serves anyway). The 403 of a refused step-up is
checked in test_oidc_browser_edge.py, which has a real IdP.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from admitd.devstack.processes import free_port
from tests.e2e.axe import assert_accessible, axe_available
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.stack import start_edge
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
    pytest.mark.skipif(not axe_available(), reason="axe-core missing: run `make node-deps`"),
]
POLICY = """
routes:
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
"""


@pytest.fixture(scope="module")
def context(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BrowserContext, str]]:
    work = tmp_path_factory.mktemp("oidc-pages")
    https_port, web_port = free_port(), free_port()
    origin = f"https://localhost:{https_port}"
    (secret := work / "oidc-client.secret").write_text("not-used")
    secret.chmod(0o600)
    (key := work / "web-signing.key").write_bytes(b"oidc-pages-e2e-signing-key!!!!!!")
    key.chmod(0o600)
    (work / "policies.yaml").write_text(POLICY)
    extra: dict[str, object] = {
        "redis_url": redis_server.url,
        "dev_mode": True,
        "web": {
            "listen": f"127.0.0.1:{web_port}",
            "signing_key_file": str(key),
            "rp_id": "localhost",
            "origins": [origin],
        },
        "oidc": {
            "issuer": f"https://127.0.0.1:{free_port()}",  # nothing listens there
            "client_id": "admitd",
            "client_secret_file": str(secret),
        },
    }
    edge = start_edge(
        pki, work / "policies.yaml", work, extra_config=extra, https_port=https_port,
        web_port=web_port,
    )  # fmt: skip
    cert, cert_key = pki.write_leaf("oidc-pages", pki.alice, pki.client_ca)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            certificate = {"origin": origin, "certPath": str(cert), "keyPath": str(cert_key)}
            yield (
                browser.new_context(ignore_https_errors=True, client_certificates=[certificate]),
                origin,
            )
            browser.close()
    finally:
        edge.group.stop_all()


def test_a_callback_without_its_state_is_an_accessible_400(
    context: tuple[BrowserContext, str],
) -> None:
    browser_context, origin = context
    page = browser_context.new_page()
    reply = page.goto(f"{origin}/.admitd/oidc/callback?state=forged&code=forged")
    assert reply is not None and reply.status == 400
    page.get_by_role("heading", name="Sign-in failed").wait_for()
    assert_accessible(page, "a11y-oidc-refused")


def test_an_unreachable_idp_is_an_accessible_503(context: tuple[BrowserContext, str]) -> None:
    browser_context, origin = context
    page = browser_context.new_page()
    reply = page.goto(f"{origin}/reports/q3")  # no session: the Check sends it to sign in
    assert reply is not None and reply.status == 503
    assert page.url.startswith(f"{origin}/.admitd/oidc/start?")
    page.get_by_role("heading", name="Sign-in unavailable").wait_for()
    assert_accessible(page, "a11y-oidc-unavailable")
