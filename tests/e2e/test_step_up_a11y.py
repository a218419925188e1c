"""The step-up pages in Chromium: who/where/why, the fresh-MFA and sign-out pages, axe-core at
desktop and phone sizes on every page, and the TOTP flow with the keyboard alone.

Shares the stack of test_browser_step_up.py (Envoy with ext_authz -> the step-up app).
Screenshots go to test-artifacts/ (tests/e2e/axe.py).
"""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Browser, Page

from admitd.core.risk import Signal
from admitd.sessions import new_session_token
from admitd.web import STEP_UP_PATH, step_up_location
from admitd.web.step_up_reason import StepUpReason
from tests.e2e.axe import assert_accessible, axe_available
from tests.e2e.test_browser_step_up import Stack, browser, new_page, stack
from tests.sessions import make_session

__all__ = ["browser", "stack"]  # module fixtures, shared by import

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not axe_available(), reason="axe-core missing: run `make node-deps`"),
]
RISKY = StepUpReason(60, (Signal.NEW_DEVICE, Signal.IMPOSSIBLE_TRAVEL))


def step_up_url(stack: Stack, path: str, reason: StepUpReason | None = None) -> str:
    host = f"localhost:{stack.edge.https_port}"
    return stack.edge.origin + step_up_location(stack.web.signer, host, path, time.time(), reason)


def with_totp(stack: Stack, user: str) -> tuple[str, pyotp.TOTP]:
    token = stack.web.stale_session(user)
    enrolment = stack.web.run(stack.web.totp.begin_enrolment(user, "acme", time.time()))
    totp = pyotp.parse_uri(enrolment.provisioning_uri)
    assert isinstance(totp, pyotp.TOTP)
    stack.web.run(stack.web.totp.confirm_enrolment(user, "acme", totp.now(), time.time()))
    return token, totp


def fresh_session(stack: Stack, user: str) -> str:
    token, ref = new_session_token(user)
    session = make_session(ref.session_id, user_id=user, roles={"admin"}, mfa_ago=20)
    stack.web.run(stack.web.sessions.create(ref, session))
    return token


def focused(page: Page) -> str:
    """The focused element as `tag#id` or `tag:text`, and that a focus style shows."""
    return str(
        page.evaluate(
            """() => {
  const e = document.activeElement;
  const style = getComputedStyle(e);
  if (!e.matches(":focus-visible") || style.outlineStyle === "none") return "no visible focus";
  return e.id ? `${e.tagName.toLowerCase()}#${e.id}` : `${e.tagName.toLowerCase()}:${e.textContent.trim()}`;
}"""
        )
    )


def test_the_page_says_who_where_and_why_and_passes_axe(stack: Stack, browser: Browser) -> None:
    token, _ = with_totp(stack, "dora")
    page = new_page(browser, stack, token)
    page.goto(step_up_url(stack, "/app/reports?q=1", RISKY))
    main = page.locator("main").inner_text()
    assert "Signed in as dora of acme." in main
    assert f"return to localhost:{stack.edge.https_port}/app/reports?q=1" in main
    assert "within the last 1 minute" in main
    assert "This sign-in looks unusual: this device is new for your account; your location" in main
    assert "Your last second-factor check was 2 hours ago." in main
    assert page.get_by_role("link", name="Cancel and go to the home page").count() == 1
    assert_accessible(page, "a11y-step-up-totp")

    # A reason that is not signed with this return_to is dropped whole, never shown.
    forged = step_up_url(stack, "/app/reports").replace("?", "?reason=60.new_device.00&", 1)
    page.goto(forged)
    assert "This sign-in looks unusual" not in page.locator("main").inner_text()
    assert "within the last" not in page.locator("main").inner_text()


def test_the_totp_flow_and_error_page_with_the_keyboard_alone(
    stack: Stack, browser: Browser
) -> None:
    token, totp = with_totp(stack, "erin")
    page = new_page(browser, stack, token)
    page.goto(f"{stack.edge.origin}/app/kb")  # the Check sends the stale session here (302)
    assert page.url.startswith(f"{stack.edge.origin}{STEP_UP_PATH}?return_to=")
    assert focused(page) == "input#code"  # autofocus: the one thing to do
    page.keyboard.type("000000")
    page.keyboard.press("Tab")
    assert focused(page) == "button:Verify code"
    page.keyboard.press("Enter")
    page.get_by_role("alert").wait_for()
    assert "did not verify" in page.get_by_role("alert").inner_text()
    assert_accessible(page, "a11y-step-up-totp-error")
    # The error page: the code field again (marked invalid), then every control in order.
    assert focused(page) == "input#code"
    assert page.locator("#code").get_attribute("aria-invalid") == "true"
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["button:Verify code", "a:Cancel and go to the home page", "button:Sign out"]
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "input#code"
    time.sleep(1.2)  # one failure makes the next attempt wait backoff_base_seconds (1 s)
    page.keyboard.type(totp.at(time.time() + 30))
    page.keyboard.press("Tab")
    with page.expect_navigation(url=f"{stack.edge.origin}/app/kb"):
        page.keyboard.press("Space")


def test_passkey_pages_and_the_confirmation_after_adding_one(
    stack: Stack, browser: Browser
) -> None:
    token = stack.web.stale_session("fred", enrolment_grant=600)
    page = new_page(browser, stack, token)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True}
    options |= {"hasUserVerification": True, "isUserVerified": True}
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    page.goto(step_up_url(stack, "/app/pk", StepUpReason(60)))
    page.get_by_role("button", name="Add a passkey").wait_for()
    assert_accessible(page, "a11y-step-up-no-factor-enrol")

    with page.expect_navigation():
        page.get_by_role("button", name="Add a passkey").click()
    status = page.get_by_role("status")
    assert "Passkey added. Next:" in status.inner_text()
    assert "/app/pk" in page.locator("main").inner_text()  # still says where it goes
    verify = page.get_by_role("button", name="Use a passkey")
    verify.wait_for()
    assert_accessible(page, "a11y-step-up-passkey")
    with page.expect_navigation(url=f"{stack.edge.origin}/app/pk"):
        verify.click()


def test_fresh_mfa_goes_straight_back_or_says_so(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, stack, fresh_session(stack, "gwen"))
    reply = page.goto(step_up_url(stack, "/app/fresh", StepUpReason(60)))
    assert reply is not None and page.url == f"{stack.edge.origin}/app/fresh"
    page.goto(f"{stack.edge.origin}{STEP_UP_PATH}")
    page.get_by_role("heading", name="You're already verified").wait_for()
    assert "nothing to do here" in page.locator("main").inner_text()
    assert page.locator("#code").count() == 0  # not asked again
    assert_accessible(page, "a11y-step-up-fresh")


def test_sign_out_revokes_the_session(stack: Stack, browser: Browser) -> None:
    token, _ = with_totp(stack, "hank")
    page = new_page(browser, stack, token)
    page.goto(step_up_url(stack, "/app/out"))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You're signed out").wait_for()
    assert stack.web.session(token) is None
    cookies = {c["name"] for c in page.context.cookies()}
    assert "__Host-admitd_session" not in cookies
    assert_accessible(page, "a11y-step-up-signed-out")
    page.keyboard.press("Tab")
    assert focused(page) == "a:Sign in again"


def test_error_pages_pass_axe_and_the_keyboard(stack: Stack, browser: Browser) -> None:
    page = new_page(browser, stack, "0123456789abcdef." + "A" * 43)
    reply = page.goto(step_up_url(stack, "/app/x"))
    assert reply is not None and reply.status == 401
    assert_accessible(page, "a11y-step-up-no-session")
    page.keyboard.press("Tab")
    assert focused(page) == "a:Sign in again"
    # A form posted without its CSRF token: the 403 page.
    token, _ = with_totp(stack, "ivan")
    page = new_page(browser, stack, token)
    page.goto(step_up_url(stack, "/app/x"))
    page.evaluate("() => { document.querySelector('input[name=csrf]').value = 'x'; }")
    page.get_by_label("6-digit code").fill("123456")
    page.get_by_role("button", name="Verify code").click()
    page.get_by_role("heading", name="Request refused").wait_for()
    assert_accessible(page, "a11y-step-up-refused")
    page.keyboard.press("Tab")
    assert focused(page) == "a:Go to the home page"
