"""The step-up page says who, where and why; fresh MFA; sign-out (aiohttp test client)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from admitd.core.risk import Signal
from admitd.oidc.handlers import LOGOUT_PATH
from admitd.sessions import MfaMethod, parse_session_token
from admitd.web import STEP_UP_PATH, build_web_app, step_up_location
from admitd.web.handlers import OIDC_LOGOUT_PATH, SIGNED_OUT_PATH
from admitd.web.pages import SIGN_OUT_PATH
from admitd.web.step_up_reason import StepUpReason
from tests.unit.test_web_step_up import COOKIE, HOST, NOW, SIGNER, Harness, harness

__all__ = ["harness"]  # the fixture, shared by import

RISKY = StepUpReason(300, (Signal.NEW_DEVICE, Signal.IMPOSSIBLE_TRAVEL))


def url(path: str = "/admin/reports?x=1", reason: StepUpReason | None = None) -> str:
    return step_up_location(SIGNER, HOST, path, NOW, reason)


async def fresh(harness: Harness, ago: float = 30) -> None:
    ref = parse_session_token(harness.token)
    assert ref is not None
    assert await harness.store.set_mfa(ref, NOW - ago, MfaMethod.TOTP)


def test_the_step_up_app_knows_the_oidc_logout_path() -> None:
    assert OIDC_LOGOUT_PATH == LOGOUT_PATH


async def test_the_page_says_who_where_and_why(harness: Harness) -> None:
    reply = await harness.client.get(url(reason=RISKY), headers=harness.headers())
    text = await reply.text()
    assert reply.status == 200
    assert "Signed in as <strong>alice</strong> of <strong>acme</strong>" in text
    assert f'return to <strong class="url">{HOST}/admin/reports?x=1</strong>' in text
    assert "within the last 5 minutes" in text
    assert "This sign-in looks unusual: this device is new for your account; your location" in text
    assert "Your last second-factor check was 2 hours ago." in text
    assert f'action="{SIGN_OUT_PATH}"' in text and 'href="/">Cancel' in text
    assert 'name="reason" value="300.new_device,impossible_travel.' in text


async def test_a_forged_reason_is_never_shown(harness: Harness) -> None:
    forged = url() + "&reason=" + quote("60.new_device." + "0" * 64)
    text = await (await harness.client.get(forged, headers=harness.headers())).text()
    assert "This sign-in looks unusual" not in text and "within the last" not in text
    assert 'name="reason" value=""' in text


async def test_a_wrong_code_keeps_the_reason(harness: Harness) -> None:
    page = url(reason=RISKY)
    token = page.split("return_to=")[1].split("&")[0]
    reason = page.split("reason=")[1]
    form = {"csrf": harness.csrf, "return_to": unquote(token), "reason": unquote(reason)}
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/totp",
        data={**form, "code": "000000"},
        headers=harness.headers(csrf=harness.csrf),
    )
    assert reply.status == 401
    assert "This sign-in looks unusual" in await reply.text()


async def test_fresh_mfa_with_a_known_max_age_goes_straight_back(harness: Harness) -> None:
    await fresh(harness)
    reply = await harness.client.get(
        url(reason=StepUpReason(60)), headers=harness.headers(), allow_redirects=False
    )
    assert reply.status == 303 and reply.headers["Location"] == "/admin/reports?x=1"


async def test_fresh_mfa_older_than_the_max_age_is_asked_again(harness: Harness) -> None:
    await fresh(harness, ago=120)
    reply = await harness.client.get(url(reason=StepUpReason(60)), headers=harness.headers())
    assert reply.status == 200 and 'id="code"' in await reply.text()


async def test_without_a_max_age_a_return_to_is_asked_rather_than_looped(
    harness: Harness,
) -> None:
    await fresh(harness)
    reply = await harness.client.get(url(), headers=harness.headers(), allow_redirects=False)
    assert reply.status == 200 and 'id="code"' in await reply.text()


async def test_fresh_mfa_without_a_return_to_says_so(harness: Harness) -> None:
    await fresh(harness)
    reply = await harness.client.get(STEP_UP_PATH, headers=harness.headers())
    text = await reply.text()
    assert reply.status == 200 and "You're already verified" in text
    assert "nothing to do here" in text and 'id="code"' not in text
    assert "Your second factor was verified just now." in text


async def test_sign_out_needs_the_csrf_token_then_revokes(harness: Harness) -> None:
    headers = harness.headers(csrf=harness.csrf)
    refused = await harness.client.post(
        SIGN_OUT_PATH, data={"csrf": "x"}, headers=headers, allow_redirects=False
    )
    assert refused.status == 403
    assert (await harness.store.list_user("alice")) != []
    reply = await harness.client.post(
        SIGN_OUT_PATH, data={"csrf": harness.csrf}, headers=headers, allow_redirects=False
    )
    assert reply.status == 303 and reply.headers["Location"] == SIGNED_OUT_PATH
    ref = parse_session_token(harness.token)
    assert ref is not None and await harness.store.get(ref) is None
    cleared = reply.headers.getall("Set-Cookie")
    assert any(c.startswith('__Host-admitd_session=""') for c in cleared)
    signed_out = await harness.client.get(SIGNED_OUT_PATH, headers={"Host": HOST})
    assert "signed out - admitd</title>" in await signed_out.text()


async def test_with_oidc_routed_the_pages_sign_out_there(harness: Harness) -> None:
    store, app_kwargs = harness.store, {"totp": harness.totp, "passkeys": harness.passkeys}
    app = build_web_app(
        store=store, signer=SIGNER, cookie_name=COOKIE, clock=lambda: NOW, **app_kwargs
    )

    async def logout(_request: web.Request) -> web.Response:
        return web.Response(status=303)

    app.router.add_post(LOGOUT_PATH, logout)  # as add_oidc_routes does with `oidc:`
    async with TestClient(TestServer(app), cookie_jar=DummyCookieJar()) as client:
        text = await (await client.get(url(), headers=harness.headers())).text()
    assert f'action="{LOGOUT_PATH}"' in text and SIGN_OUT_PATH not in text
