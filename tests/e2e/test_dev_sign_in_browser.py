"""`admitd dev` in a real browser: Chromium -> the dev Envoy config -> no session -> the dev
sign-in page -> pick a user and enrol TOTP (QR code) -> back -> step up -> the upstream.

The stack is the one `admitd dev` starts (write_dev_config + start_dev_processes: the dev
PKI, policies/routes.yaml, admitd serve, Envoy, the echo upstream) on free loopback ports.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, sync_playwright

from admitd.devstack.processes import ProcessGroup, free_port
from admitd.devstack.stack import DevPorts, start_dev_processes, write_dev_config
from admitd.web.dev_sign_in import DEV_SIGN_IN_PATH
from tests.e2e.axe import assert_accessible, axe_available
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
]

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class DevStack:
    home: Path
    origin: str


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    home = tmp_path_factory.mktemp("dev")
    names = ("https", "authz", "metrics", "upstream", "envoy_admin", "web", "admin")
    ports = DevPorts(**{name: free_port() for name in names})
    admitd_yaml, envoy_yaml = write_dev_config(home, POLICIES, ports, None)
    with ProcessGroup(home / "logs") as group:
        start_dev_processes(group, admitd_yaml, envoy_yaml, ports)
        yield DevStack(home, f"https://localhost:{ports.https}")


def test_pick_a_user_enrol_totp_step_up_and_land(dev_stack: DevStack) -> None:
    pki = dev_stack.home / "pki"
    certificate = {
        "origin": dev_stack.origin,
        "certPath": str(pki / "alice.pem"),
        "keyPath": str(pki / "alice.key"),
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(ignore_https_errors=True, client_certificates=[certificate])
        page = context.new_page()
        try:
            _walk(page, dev_stack.origin)
        finally:
            browser.close()


def _walk(page: Page, origin: str) -> None:
    # No session: admitd's Check answers the browser with a 302 to the dev sign-in page.
    reply = page.goto(f"{origin}/finance/ledger?month=5")
    assert reply is not None and reply.status == 200
    assert page.url.startswith(f"{origin}{DEV_SIGN_IN_PATH}?return_to=")
    assert reply.request.redirected_from is not None
    assert reply.request.redirected_from.response().status == 302  # type: ignore[union-attr]
    assert "fin (acme: finance)" in page.locator("main").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dev-sign-in.png"), full_page=True)
    if axe_available():
        assert_accessible(page, "a11y-dev-sign-in")

    page.get_by_role("radio", name=re.compile(r"^fin ")).check()
    page.get_by_label("Also enrol an authenticator app").check()
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Add an authenticator app").wait_for()
    qr = page.get_by_role("img", name=re.compile("QR code to add fin"))
    assert qr.is_visible() and (qr.bounding_box() or {}).get("width", 0) >= 200
    page.screenshot(path=str(ARTIFACTS / "dev-sign-in-totp.png"), full_page=True)
    if axe_available():
        assert_accessible(page, "a11y-dev-sign-in-totp")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)

    # Confirming activates the factor; /finance/ then asks for a fresh code (step-up).
    page.get_by_label("6-digit code").fill(totp.now())
    page.get_by_role("button", name="Confirm code").click()
    page.wait_for_url(re.compile(re.escape(origin) + r"/\.admitd/step-up\?return_to="))
    # The confirmation used this step's code; the next step's is fresh (±1 step).
    page.get_by_label("6-digit code").fill(totp.at(time.time() + 30))
    with page.expect_navigation(url=f"{origin}/finance/ledger?month=5"):
        page.get_by_role("button", name="Verify code").click()
    echoed = json.loads(page.locator("body").inner_text())
    assert echoed["path"] == "/finance/ledger?month=5"
    assert echoed["headers"]["x-admitd-principal"] == "spiffe://admitd.dev/user/alice"
