"""The dev sign-in page (dev_mode only) through aiohttp's test client: real TOTP, in-memory store."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pyotp
import pytest
from aiohttp import ClientResponse, DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from admitd.config import Config, TlsConfig
from admitd.core.decision import Reason
from admitd.engine import Engine
from admitd.envelope import Sealer
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.config import MfaConfig
from admitd.mfa.state import MemoryMfaState
from admitd.mfa.totp import TotpService
from admitd.runtime import _sign_in_url
from admitd.sessions import MfaMethod, Session, parse_session_token
from admitd.sessions.config import SessionsConfig
from admitd.sessions.memory_store import MemorySessionStore
from admitd.web import ReturnToSigner, build_web_app
from admitd.web.app import SECURITY_HEADERS
from admitd.web.csrf import CSRF_COOKIE
from admitd.web.dev_sign_in import (
    DEV_SIGN_IN_PATH,
    DEV_TOTP_PATH,
    LOGIN_CSRF_COOKIE,
    DevSignIn,
    add_dev_sign_in_routes,
)
from admitd.web.dev_users import DEV_USERS
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request
from tests.unit.test_web_step_up import FakePasskeys

NOW = float(int(time.time()))  # the test PKI is valid now, not at a fixed date
HOST = "localhost:8443"
COOKIE = "__Host-admitd_session"
SIGNER = ReturnToSigner(b"d" * 32)
POLICY = """
routes:
  - {name: app, match: {path_prefix: /app/}, identities: any, session: required}
"""


@dataclass
class Harness:
    client: TestClient  # type: ignore[type-arg]
    store: MemorySessionStore
    logins: list[str]

    async def login_form(self, return_to: str = "") -> tuple[str, str]:
        """GET the page; (its CSRF field, the CSRF cookie)."""
        query = f"?return_to={quote(return_to, safe='')}" if return_to else ""
        reply = await self.client.get(DEV_SIGN_IN_PATH + query, headers={"Host": HOST})
        assert reply.status == 200
        field = _field(await reply.text(), "csrf")
        return field, reply.cookies[LOGIN_CSRF_COOKIE].value

    async def sign_in(
        self, user: str, *, return_to: str = "", enrol: bool = False, **headers: str
    ) -> ClientResponse:
        field, cookie = await self.login_form()
        form = {"csrf": field, "user": user, "return_to": return_to}
        if enrol:
            form["enrol_totp"] = "1"
        all_headers = {"Host": HOST, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}", **headers}
        return await self.client.post(
            DEV_SIGN_IN_PATH, data=form, headers=all_headers, allow_redirects=False
        )

    async def sessions(self, user: str) -> list[Session]:
        return await self.store.list_user(user)


async def _harness(*, dev_mode: bool) -> tuple[TestClient, MemorySessionStore, list[str], bool]:  # type: ignore[type-arg]
    store = MemorySessionStore()
    totp = TotpService(
        MemoryMfaState(),
        Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)),
        store,
        MfaConfig(backoff_base_seconds=0),  # a wrong code, then the right one at once
    )
    app = build_web_app(
        store=store, totp=totp, passkeys=FakePasskeys(), signer=SIGNER, cookie_name=COOKIE,
        clock=lambda: NOW,
    )  # fmt: skip
    logins: list[str] = []

    async def on_login(session: Session, agent: str, ip: str, now: float) -> None:
        logins.append(session.user_id)

    routes = DevSignIn(
        store=store, totp=totp, signer=SIGNER, sessions=SessionsConfig(), clock=lambda: NOW,
        on_login=on_login,
    )  # fmt: skip
    added = add_dev_sign_in_routes(app, routes, dev_mode=dev_mode)
    client = TestClient(TestServer(app), cookie_jar=DummyCookieJar())
    await client.start_server()
    return client, store, logins, added


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    client, store, logins, added = await _harness(dev_mode=True)
    assert added
    yield Harness(client, store, logins)
    await client.close()


def _field(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert found is not None, name
    return found.group(1)


def _token(path: str, host: str = HOST, now: float = NOW) -> str:
    return SIGNER.sign(host, path, now)


async def test_the_page_lists_every_dev_user_with_roles_and_organisation(harness: Harness) -> None:
    reply = await harness.client.get(
        f"{DEV_SIGN_IN_PATH}?return_to={quote(_token('/app/x'), safe='')}", headers={"Host": HOST}
    )
    text = await reply.text()
    assert reply.status == 200
    for user in DEV_USERS:
        assert f'value="{user.user_id}"' in text
        assert f"{user.user_id} ({user.organisation}: {user.role_list})" in text
    assert _field(text, "return_to") == _token("/app/x")
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"{LOGIN_CSRF_COOKIE}={_field(text, 'csrf')};")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value


async def test_a_forged_return_to_is_not_echoed(harness: Harness) -> None:
    forged = _token("/app/x")[:-2] + "AA"
    reply = await harness.client.get(
        f"{DEV_SIGN_IN_PATH}?return_to={quote(forged, safe='')}", headers={"Host": HOST}
    )
    assert _field(await reply.text(), "return_to") == ""


async def test_signing_in_creates_a_session_the_engine_accepts(
    harness: Harness, pki: PkiSet, tmp_path: Path
) -> None:
    reply = await harness.sign_in("ana", return_to=_token("/app/reports?y=1"))
    assert reply.status == 303
    assert reply.headers["Location"] == "/app/reports?y=1"
    cookie = reply.cookies[COOKIE]
    (set_cookie,) = [h for h in reply.headers.getall("Set-Cookie") if h.startswith(COOKIE + "=")]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age="):
        assert attribute in set_cookie
    ref = parse_session_token(cookie.value)
    assert ref is not None
    (session,) = await harness.sessions("ana")
    assert (session.organisation, session.roles) == ("acme", frozenset({"viewer"}))
    assert session.mfa_verified_at is None and session.has_enrolment_grant(NOW)
    assert harness.logins == ["ana"]

    (tmp_path / "p.yaml").write_text(POLICY)
    engine, _ = engine_for(pki.trust_bundle, tmp_path, store=harness.store, clock=NOW)
    headers = {"cookie": f"{COOKIE}={cookie.value}"}
    decision, _ = await engine.check(request("/app/x", cert=url_pem(pki.alice), headers=headers))
    assert decision.allowed, decision.reason
    no_cookie, _ = await engine.check(request("/app/x", cert=url_pem(pki.alice)))
    assert no_cookie.reason is Reason.SESSION_REQUIRED


@pytest.mark.parametrize(
    "token",
    ["", "garbage", _token("/app/x")[:-2] + "AA", _token("/app/x", host="evil.test")],
    ids=["none", "garbage", "forged-mac", "other-host"],
)
async def test_an_unverified_return_to_goes_home(harness: Harness, token: str) -> None:
    reply = await harness.sign_in("ana", return_to=token)
    assert reply.status == 303 and reply.headers["Location"] == "/"


@pytest.mark.parametrize(
    "spoil",
    ["no-cookie", "other-cookie", "forged", "cross-site"],
)
async def test_a_bad_csrf_token_creates_no_session(harness: Harness, spoil: str) -> None:
    field, cookie = await harness.login_form()
    other, _ = await harness.login_form()
    headers = {"Host": HOST, "Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"}
    form = {"csrf": field, "user": "ana"}
    if spoil == "no-cookie":
        headers.pop("Cookie")
    elif spoil == "other-cookie":
        form["csrf"] = other
    elif spoil == "forged":
        forged = field.split(".")[0] + ".AAAA"
        form["csrf"], headers["Cookie"] = forged, f"{LOGIN_CSRF_COOKIE}={forged}"
    else:
        headers["Sec-Fetch-Site"] = "cross-site"
    reply = await harness.client.post(
        DEV_SIGN_IN_PATH, data=form, headers=headers, allow_redirects=False
    )
    assert reply.status == 403
    assert COOKIE not in reply.cookies
    assert await harness.sessions("ana") == []


async def test_an_unlisted_user_is_refused(harness: Harness) -> None:
    reply = await harness.sign_in("root")
    assert reply.status == 400 and "Pick one of the listed users" in await reply.text()
    assert await harness.sessions("root") == []


async def test_enrolling_totp_shows_the_qr_code_and_the_key_then_confirms(
    harness: Harness,
) -> None:
    reply = await harness.sign_in("fin", return_to=_token("/app/ledger"), enrol=True)
    text = await reply.text()
    assert reply.status == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in text
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', text)
    assert secret is not None
    totp = pyotp.TOTP(secret.group(1).replace(" ", ""))
    session_cookie = reply.cookies[COOKIE].value
    csrf = reply.cookies[CSRF_COOKIE].value
    assert _field(text, "csrf") == csrf
    assert await harness.store.factors("fin") == frozenset()  # pending until confirmed
    headers = {"Host": HOST, "Cookie": f"{COOKIE}={session_cookie}; {CSRF_COOKIE}={csrf}"}
    form = {"csrf": csrf, "return_to": _field(text, "return_to")}

    wrong = await harness.client.post(
        DEV_TOTP_PATH, data={**form, "code": totp.at(NOW - 300)}, headers=headers
    )
    assert wrong.status == 401 and 'role="alert"' in await wrong.text()
    assert await harness.store.factors("fin") == frozenset()

    good = await harness.client.post(
        DEV_TOTP_PATH, data={**form, "code": totp.at(NOW)}, headers=headers, allow_redirects=False
    )
    assert good.status == 303 and good.headers["Location"] == "/app/ledger"
    assert await harness.store.factors("fin") == frozenset({MfaMethod.TOTP})
    (session,) = await harness.sessions("fin")
    assert session.mfa_verified_at is None  # enrolling is not a step-up: the route asks next


async def test_confirming_totp_needs_the_session_csrf_token(harness: Harness) -> None:
    reply = await harness.sign_in("fin", enrol=True)
    session_cookie = reply.cookies[COOKIE].value
    headers = {"Host": HOST, "Cookie": f"{COOKIE}={session_cookie}; {CSRF_COOKIE}=nope"}
    form = {"csrf": "nope", "code": "123456"}
    refused = await harness.client.post(DEV_TOTP_PATH, data=form, headers=headers)
    assert refused.status == 403
    no_session = await harness.client.post(DEV_TOTP_PATH, data=form, headers={"Host": HOST})
    assert no_session.status == 401


async def test_without_dev_mode_there_is_no_dev_sign_in() -> None:
    client, store, _, added = await _harness(dev_mode=False)
    try:
        assert not added
        assert (await client.get(DEV_SIGN_IN_PATH, headers={"Host": HOST})).status == 404
        form = {"user": "ada", "csrf": "x"}
        reply = await client.post(DEV_SIGN_IN_PATH, data=form, headers={"Host": HOST})
        assert reply.status in (404, 405)
        assert await store.list_user("ada") == []
    finally:
        await client.close()


def _config(*, dev_mode: bool) -> Config:
    return Config(file="t", policies=Path(), tls=TlsConfig(trust_bundles=()), dev_mode=dev_mode)


async def test_dev_mode_sends_a_browser_without_a_session_to_the_dev_page(
    pki: PkiSet, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    base, _ = engine_for(pki.trust_bundle, tmp_path)
    assert _sign_in_url(_config(dev_mode=False), SIGNER) is None
    assert _sign_in_url(_config(dev_mode=True), None) is None
    engine = Engine(
        base.policy, base.certificates, sign_in_url=_sign_in_url(_config(dev_mode=True), SIGNER)
    )
    cert = url_pem(pki.alice)
    browser = request("/app/x?q=1", cert=cert, headers={"sec-fetch-mode": "navigate"})
    decision, _ = await engine.check(browser)
    assert decision.status == 302 and decision.redirect_to.startswith(
        f"{DEV_SIGN_IN_PATH}?return_to="
    )
    token = unquote(decision.redirect_to.split("=", 1)[1])
    assert SIGNER.verify(token, browser.host, time.time()) == "/app/x?q=1"
    api, _ = await engine.check(
        request("/app/x", cert=cert, headers={"accept": "application/json"})
    )
    assert api.status == 401 and api.redirect_to == ""


async def _raw_post(harness: Harness, cookie: bytes, body: bytes) -> str:
    """POST the sign-in form with bytes aiohttp's client would not send: the status line."""
    assert harness.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.client.port)
    writer.write(
        b"POST " + DEV_SIGN_IN_PATH.encode() + b" HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n"
        b"Cookie: " + cookie + b"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    await writer.drain()
    status_line = (await reader.readline()).decode()
    writer.close()
    await writer.wait_closed()
    return status_line


@pytest.mark.parametrize("spoil", ["none", "cookie", "body"])
async def test_bytes_that_are_not_utf8_are_refused_not_a_500(harness: Harness, spoil: str) -> None:
    """A login-CSRF cookie byte that is not UTF-8 reaches the handler as a lone surrogate,
    whose .encode() raised; a form body that is not UTF-8 made request.post() raise."""
    field, cookie = await harness.login_form()
    cookie_bytes = f"{LOGIN_CSRF_COOKIE}={cookie}".encode() + (
        b"\xff" if spoil == "cookie" else b""
    )
    body = f"csrf={quote(field)}&user=ana".encode() + (b"&x=\xff" if spoil == "body" else b"")
    status_line = await _raw_post(harness, cookie_bytes, body)
    if spoil == "none":  # the same request with clean bytes signs in: the 403 is the bytes
        assert status_line.split()[1] == "303", status_line
        return
    assert status_line.split()[1] == "403", status_line
    assert await harness.sessions("ana") == []
