"""Step-up in a real browser: Chromium -> Envoy (TLS, ext_authz) -> admitd's step-up app -> back.

(a) TOTP typed into the form; (b) a passkey registered and then used, with Chromium's
DevTools virtual authenticator (CTAP2, internal, resident key, user verification).
Screenshots of the step-up page go to test-artifacts/.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from admitd.devstack.processes import ProcessGroup, free_port
from admitd.web import step_up_location
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, Edge, WebApp, start_edge
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Stack:
    edge: Edge
    web: WebApp
    pki: PkiSet

    def step_up_url(self, path: str) -> str:
        host = f"localhost:{self.edge.https_port}"
        return self.edge.origin + step_up_location(self.web.signer, host, path, time.time())


@pytest.fixture(scope="module")
def stack(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("browser")
    https_port, web_port = free_port(), free_port()
    redis_url = redis_server.url
    with ProcessGroup(work / "logs") as group:
        web = WebApp(redis_url, web_port, origin=f"https://localhost:{https_port}")
        web.start()
        try:
            yield Stack(start_edge(pki, work, group, (https_port, web_port), redis_url), web, pki)
        finally:
            web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def new_page(browser: Browser, stack: Stack, session_token: str) -> Page:
    cert, key = stack.pki.write_leaf("alice-browser", stack.pki.alice, stack.pki.client_ca)
    client_certificate = {"origin": stack.edge.origin, "certPath": str(cert), "keyPath": str(key)}
    context = browser.new_context(
        ignore_https_errors=True, client_certificates=[client_certificate]
    )
    context.add_cookies(
        [
            {
                "name": "__Host-admitd_session",
                "value": session_token,
                "url": stack.edge.origin,
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    return context.new_page()


def landed_json(page: Page) -> dict[str, object]:
    text = page.locator("body").inner_text()
    document: dict[str, object] = json.loads(text)
    return document


def test_totp_step_up_returns_to_the_page(stack: Stack, browser: Browser) -> None:
    token = stack.web.stale_session("alice")
    enrolment = stack.web.run(stack.web.totp.begin_enrolment("alice", "acme", time.time()))
    totp = pyotp.parse_uri(enrolment.provisioning_uri)
    assert isinstance(totp, pyotp.TOTP)
    confirmed = stack.web.run(
        stack.web.totp.confirm_enrolment("alice", "acme", totp.now(), time.time())
    )
    assert confirmed.value == "ok"
    page = new_page(browser, stack, token)

    # The whole flow: the protected page itself sends the stale session to step up.
    reply = page.goto(f"{stack.edge.origin}/app/reports?year=2024")
    assert reply is not None and reply.status == 200
    assert page.url.startswith(f"{stack.edge.origin}/.admitd/step-up?return_to=")
    assert reply.request.redirected_from is not None
    assert reply.request.redirected_from.response().status == 302  # type: ignore[union-attr]
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    # The Check's redirect signed why it asks (the route's 60 s), and the page says so.
    assert "?return_to=" in page.url and "&reason=60." in page.url
    assert "check within the last 1 minute" in page.locator("main").inner_text()
    page.get_by_label("6-digit code").fill("000000")
    page.get_by_role("button", name="Verify code").click()
    alert = page.get_by_role("alert")
    assert "did not verify" in alert.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "step-up-totp-error.png"), full_page=True)

    # The confirmation used the current step's code; the next step's is fresh (±1 step).
    # One failure makes the next attempt wait backoff_base_seconds (1 s): let it pass.
    time.sleep(1.2)
    page.get_by_label("6-digit code").fill(totp.at(time.time() + 30))
    page.screenshot(path=str(ARTIFACTS / "step-up-totp.png"), full_page=True)
    with page.expect_navigation(url=f"{stack.edge.origin}/app/reports?year=2024"):
        page.get_by_role("button", name="Verify code").click()
    echoed = landed_json(page)
    assert echoed["path"] == "/app/reports?year=2024"  # the upstream answered (200)
    session = stack.web.session(token)
    assert session is not None and (session.mfa_age(time.time()) or 99) < 30
    assert session.mfa_method is not None and session.mfa_method.value == "totp"


def test_passkey_register_then_step_up(stack: Stack, browser: Browser) -> None:
    # No factor yet: the login service let this session enrol its first (single use).
    token = stack.web.stale_session("bob", enrolment_grant=600)
    page = new_page(browser, stack, token)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )["authenticatorId"]

    # A privileged user with no factor is refused outright, not sent to step up...
    refused = page.goto(f"{stack.edge.origin}/app/finance")
    assert refused is not None and refused.status == 403
    assert "mfa_enrollment_required" in page.locator("body").inner_text()
    # ...and enrols a first passkey on the step-up page itself.
    page.goto(stack.step_up_url("/app/finance"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "step-up-no-factor.png"), full_page=True)
    with page.expect_navigation():
        page.get_by_role("button", name="Add a passkey").click()
    page.get_by_role("button", name="Use a passkey").wait_for()
    # Now the protected page itself sends the (still stale) session to step up.
    page.goto(f"{stack.edge.origin}/app/finance")
    assert page.url.startswith(f"{stack.edge.origin}/.admitd/step-up?return_to=")
    verify = page.get_by_role("button", name="Use a passkey")
    verify.wait_for()
    page.screenshot(path=str(ARTIFACTS / "step-up-passkey.png"), full_page=True)
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1

    with page.expect_navigation(url=f"{stack.edge.origin}/app/finance"):
        verify.click()
    assert landed_json(page)["path"] == "/app/finance"
    session = stack.web.session(token)
    assert session is not None and session.mfa_method is not None
    assert session.mfa_method.value == "passkey" and (session.mfa_age(time.time()) or 99) < 30
    stored = stack.web.run(stack.web.passkey_store.credential_ids("bob"))
    assert len(stored) == 1


def test_a_session_without_an_enrolment_grant_cannot_add_a_first_passkey(
    stack: Stack, browser: Browser
) -> None:
    token = stack.web.stale_session("carol")  # no factor, and no grant from the login service
    page = new_page(browser, stack, token)
    reply = page.goto(stack.step_up_url("/app/finance"))
    assert reply is not None and reply.status == 200
    assert "sign in again" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Add a passkey").count() == 0
    csrf = page.locator('meta[name="admitd-csrf"]').get_attribute("content") or ""
    refused = page.request.get(
        f"{stack.edge.origin}/.admitd/step-up/passkey/register/options",
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "enrolment_grant_required"


def test_step_up_route_bypasses_ext_authz_and_refuses_without_session(
    stack: Stack, browser: Browser
) -> None:
    page = new_page(browser, stack, "0123456789abcdef." + "A" * 43)
    reply = page.goto(stack.step_up_url("/app/x"))
    assert reply is not None
    # admitd's own 401 page, not an ext_authz denial (the policy has no /.admitd/ route).
    assert reply.status == 401
    assert "Sign in" in page.get_by_role("alert").inner_text()
