"""The step-up web app through aiohttp's test client, with fake factors and an in-memory store."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from admitd.errors import StoreUnavailable
from admitd.mfa.ports import MfaResult, TotpEnrolment
from admitd.sessions import MfaMethod, Session, SessionRef, new_session_token
from admitd.sessions.memory_store import MemorySessionStore
from admitd.web import STEP_UP_PATH, ReturnToSigner, build_web_app
from admitd.web.app import SECURITY_HEADERS
from admitd.web.csrf import CSRF_COOKIE, csrf_token
from tests.sessions import make_session

NOW = 1_700_000_000.0
HOST = "app.example.com:8443"
COOKIE = "__Host-admitd_session"
SIGNER = ReturnToSigner(b"s" * 32)
GOOD_CODE = "123456"
LOCKING_CODE = "999999"


@dataclass
class FakeTotp:
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        return TotpEnrolment("otpauth://totp/x", "")

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        return MfaResult.OK

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        self.calls.append((user_id, code))
        if code == LOCKING_CODE:
            return MfaResult.LOCKED_OUT
        return MfaResult.OK if code == GOOD_CODE else MfaResult.INVALID


@dataclass
class FakePasskeys:
    result: MfaResult = MfaResult.OK
    registered: list[str] = field(default_factory=list)

    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        return '{"challenge": "reg"}'

    async def register(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        self.registered.append(credential_json)
        return self.result

    async def authentication_options(self, user_id: str, now: float) -> str:
        return '{"challenge": "auth", "userVerification": "required"}'

    async def authenticate(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        return self.result


@dataclass
class Harness:
    client: TestClient  # type: ignore[type-arg]
    store: MemorySessionStore
    totp: FakeTotp
    passkeys: FakePasskeys
    token: str
    csrf: str

    def headers(self, *, csrf: str | None = None, session: str | None = None) -> dict[str, str]:
        cookie = f"{COOKIE}={self.token if session is None else session}"
        if csrf is not None:
            cookie += f"; {CSRF_COOKIE}={csrf}"
        return {"Host": HOST, "Cookie": cookie}

    async def session(self) -> Session:
        (found,) = await self.store.list_user("alice")
        return found


def alice_session(session_id: str, **changes: Any) -> Session:
    """An admin session of alice whose MFA is two hours old, with `changes` to its fields."""
    base = make_session(
        session_id,
        user_id="alice",
        roles={"admin"},
        now=NOW,
        created_ago=3600,
        seen_ago=10,
        idle_timeout=1800,
        mfa_ago=7200,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    store, totp, passkeys = MemorySessionStore(), FakeTotp(), FakePasskeys()
    token, ref = new_session_token("alice")
    await store.create(ref, alice_session(ref.session_id))
    await store.set_factor("alice", MfaMethod.TOTP, active=True, at=NOW - 86400)
    app = build_web_app(
        store=store,
        totp=totp,
        passkeys=passkeys,
        signer=SIGNER,
        cookie_name=COOKIE,
        clock=lambda: NOW,
    )
    client = TestClient(TestServer(app), cookie_jar=DummyCookieJar())
    await client.start_server()
    csrf = csrf_token(SIGNER.subkey("csrf"), ref.session_id)
    yield Harness(client, store, totp, passkeys, token, csrf)
    await client.close()


def page_url(path: str = "/admin/reports?x=1") -> str:
    return f"{STEP_UP_PATH}?return_to={quote(SIGNER.sign(HOST, path, NOW), safe='')}"


def return_token(path: str = "/admin/reports?x=1") -> str:
    return SIGNER.sign(HOST, path, NOW)


async def test_page_shows_the_totp_form_and_sets_the_csrf_cookie(harness: Harness) -> None:
    reply = await harness.client.get(page_url(), headers=harness.headers())
    text = await reply.text()
    assert reply.status == 200
    assert '<label for="code">' in text and 'id="code"' in text
    assert f'name="csrf" value="{harness.csrf}"' in text
    assert f'name="return_to" value="{return_token()}"' in text
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}={harness.csrf};")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie  # __Host- cookies must not carry one


@pytest.mark.parametrize(
    "cookie",
    [None, "garbage", "0123456789abcdef." + "A" * 43],
    ids=["none", "malformed", "unknown"],
)
async def test_no_valid_session_gets_a_plain_401_page(harness: Harness, cookie: str | None) -> None:
    headers = {"Host": HOST} if cookie is None else harness.headers(session=cookie)
    reply = await harness.client.get(page_url(), headers=headers)
    assert reply.status == 401
    assert 'role="alert"' in await reply.text()
    assert "Set-Cookie" not in reply.headers


async def test_bearer_token_is_not_a_browser_session(harness: Harness) -> None:
    headers = {"Host": HOST, "Authorization": f"Bearer {harness.token}"}
    assert (await harness.client.get(page_url(), headers=headers)).status == 401


async def test_expired_session_gets_401(harness: Harness) -> None:
    token, ref = new_session_token("alice")
    await harness.store.create(ref, alice_session(ref.session_id, absolute_expires_at=NOW - 1))
    reply = await harness.client.get(page_url(), headers=harness.headers(session=token))
    assert reply.status == 401


async def test_security_headers_on_every_response(harness: Harness) -> None:
    for path, headers in [
        (page_url(), harness.headers()),
        (page_url(), {"Host": HOST}),
        (f"{STEP_UP_PATH}/passkey.js", {"Host": HOST}),
        (f"{STEP_UP_PATH}/nope", {"Host": HOST}),
    ]:
        reply = await harness.client.get(path, headers=headers)
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers.get(name) == value, (path, name)
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp


HSTS = "max-age=31536000; includeSubDomains"


async def test_hsts_on_every_response_including_json_and_errors(harness: Harness) -> None:
    """RFC 6797: once seen over https, the browser never tries plain http for a year."""
    options = f"{STEP_UP_PATH}/passkey/options"
    replies = [
        await harness.client.get(page_url(), headers=harness.headers()),  # 200 page
        await harness.client.get(page_url(), headers={"Host": HOST}),  # 401 page
        await harness.client.get(options, headers=json_headers(harness)),  # 200 JSON
        await harness.client.get(options, headers=json_headers(harness, csrf="x")),  # 403 JSON
        await harness.client.get(f"{STEP_UP_PATH}/nope", headers={"Host": HOST}),  # 404
        await harness.client.delete(STEP_UP_PATH, headers={"Host": HOST}),  # 405
        await harness.client.post(  # 413: larger than the body limit
            f"{STEP_UP_PATH}/passkey/verify",
            data=b"x" * 100_000,
            headers=json_headers(harness) | {"Content-Type": "application/json"},
        ),
        await post_totp(harness, GOOD_CODE),  # 303 redirect
    ]
    assert [r.status for r in replies] == [200, 401, 200, 403, 404, 405, 413, 303]
    for reply in replies:
        assert reply.headers.get("Strict-Transport-Security") == HSTS, reply.status


async def test_an_unexpected_error_is_a_plain_500_with_the_security_headers(
    harness: Harness,
) -> None:
    async def broken(*_args: object) -> MfaResult:
        raise RuntimeError("secret detail")

    harness.totp.verify = broken  # type: ignore[method-assign,assignment]
    reply = await post_totp(harness, GOOD_CODE)
    assert reply.status == 500
    assert "secret detail" not in await reply.text() and "Traceback" not in await reply.text()
    assert reply.headers.get("Strict-Transport-Security") == HSTS
    assert reply.headers.get("Cache-Control") == "no-store"


async def test_page_has_no_inline_script_or_style(harness: Harness) -> None:
    text = await (await harness.client.get(page_url(), headers=harness.headers())).text()
    assert re.search(r"<script(?![^>]*\bsrc=)", text) is None
    assert "<style" not in text and " style=" not in text and "onclick" not in text


async def test_assets_are_served_with_their_types(harness: Harness) -> None:
    js = await harness.client.get(f"{STEP_UP_PATH}/passkey.js", headers={"Host": HOST})
    css = await harness.client.get(f"{STEP_UP_PATH}/step-up.css", headers={"Host": HOST})
    assert js.content_type == "text/javascript" and "navigator.credentials" in await js.text()
    assert css.content_type == "text/css"


async def post_totp(harness: Harness, code: str, **changes: str) -> ClientResponse:
    cookie_csrf = changes.pop("cookie_csrf", harness.csrf)
    form = {"code": code, "csrf": harness.csrf, "return_to": return_token()} | changes
    return await harness.client.post(
        f"{STEP_UP_PATH}/totp",
        data=form,
        headers=harness.headers(csrf=cookie_csrf),
        allow_redirects=False,
    )


async def test_totp_success_refreshes_mfa_and_returns_303(harness: Harness) -> None:
    reply = await post_totp(harness, GOOD_CODE)
    assert reply.status == 303
    assert reply.headers["Location"] == "/admin/reports?x=1"
    assert reply.headers["Cache-Control"] == "no-store"
    session = await harness.session()
    assert session.mfa_verified_at == NOW and session.mfa_method is MfaMethod.TOTP
    assert harness.totp.calls == [("alice", GOOD_CODE)]


async def test_totp_success_without_a_valid_return_to_goes_home(harness: Harness) -> None:
    evil = ReturnToSigner(b"e" * 32).sign(HOST, "/x", NOW)
    other_host = SIGNER.sign("evil.example", "/x", NOW)
    for token in ["", "https://evil.example/", evil, other_host]:
        reply = await post_totp(harness, GOOD_CODE, return_to=token)
        assert reply.headers["Location"] == "/"


async def test_wrong_code_shows_an_accessible_error(harness: Harness) -> None:
    reply = await post_totp(harness, "654321")
    text = await reply.text()
    assert reply.status == 401
    assert re.search(r'role="alert">[^<]*did not verify', text)
    assert 'aria-invalid="true"' in text
    assert f'name="return_to" value="{return_token()}"' in text
    assert (await harness.session()).mfa_verified_at == NOW - 7200


async def test_malformed_code_is_not_sent_to_the_factor(harness: Harness) -> None:
    reply = await post_totp(harness, "12ab56")
    assert reply.status == 401
    assert harness.totp.calls == []


async def test_locked_out_is_429(harness: Harness) -> None:
    reply = await post_totp(harness, LOCKING_CODE)
    assert reply.status == 429
    assert "Too many failed attempts" in await reply.text()


@pytest.mark.parametrize(
    "changes",
    [
        {"csrf": ""},
        {"csrf": "wrong"},
        {"cookie_csrf": "wrong"},
        {"csrf": "x" * 43, "cookie_csrf": "x" * 43},  # double-submitted but not this session's
    ],
    ids=["missing", "wrong-field", "wrong-cookie", "not-bound-to-session"],
)
async def test_csrf_failures_are_refused_before_the_factor(
    harness: Harness, changes: dict[str, str]
) -> None:
    reply = await post_totp(harness, GOOD_CODE, **changes)
    assert reply.status == 403
    assert harness.totp.calls == []


async def test_missing_csrf_cookie_is_refused(harness: Harness) -> None:
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/totp",
        data={"code": GOOD_CODE, "csrf": harness.csrf, "return_to": ""},
        headers=harness.headers(),
        allow_redirects=False,
    )
    assert reply.status == 403


async def test_cross_site_fetch_metadata_is_refused(harness: Harness) -> None:
    headers = harness.headers(csrf=harness.csrf) | {"Sec-Fetch-Site": "cross-site"}
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/totp",
        data={"code": GOOD_CODE, "csrf": harness.csrf, "return_to": ""},
        headers=headers,
        allow_redirects=False,
    )
    assert reply.status == 403 and harness.totp.calls == []


async def test_totp_without_session_is_401(harness: Harness) -> None:
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/totp", data={"code": GOOD_CODE}, headers={"Host": HOST}
    )
    assert reply.status == 401


async def test_session_revoked_during_step_up_is_401(harness: Harness) -> None:
    async def gone(*_args: object) -> bool:
        return False

    harness.store.set_mfa = gone  # type: ignore[method-assign,assignment]
    assert (await post_totp(harness, GOOD_CODE)).status == 401


async def test_store_failure_is_a_plain_503(harness: Harness) -> None:
    async def down(*_args: object) -> None:
        raise StoreUnavailable("session lookup: ConnectionError")

    harness.store.get = down  # type: ignore[method-assign,assignment]
    reply = await harness.client.get(page_url(), headers=harness.headers())
    assert reply.status == 503
    assert "ConnectionError" not in await reply.text()
    assert reply.headers["Cache-Control"] == "no-store"


# --- passkey JSON endpoints -------------------------------------------------------------


def json_headers(harness: Harness, csrf: str | None = None) -> dict[str, str]:
    token = harness.csrf if csrf is None else csrf
    return harness.headers(csrf=harness.csrf) | {"X-CSRF-Token": token}


async def test_passkey_options_need_the_csrf_header(harness: Harness) -> None:
    url = f"{STEP_UP_PATH}/passkey/options"
    refused = await harness.client.get(url, headers=json_headers(harness, csrf="nope"))
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "csrf"
    reply = await harness.client.get(url, headers=json_headers(harness))
    assert reply.status == 200 and (await reply.json())["userVerification"] == "required"


async def test_passkey_verify_success_returns_the_location(harness: Harness) -> None:
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/passkey/verify",
        json={"credential": {"id": "x"}, "return_to": return_token("/finance/")},
        headers=json_headers(harness),
    )
    assert reply.status == 200 and await reply.json() == {"location": "/finance/"}
    session = await harness.session()
    assert session.mfa_verified_at == NOW and session.mfa_method is MfaMethod.PASSKEY


@pytest.mark.parametrize(
    ("result", "status"), [(MfaResult.INVALID, 401), (MfaResult.LOCKED_OUT, 429)]
)
async def test_passkey_verify_failure(harness: Harness, result: MfaResult, status: int) -> None:
    harness.passkeys.result = result
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/passkey/verify",
        json={"credential": {}, "return_to": ""},
        headers=json_headers(harness),
    )
    assert reply.status == status
    assert (await reply.json())["error"]["code"] == result.value
    assert (await harness.session()).mfa_verified_at == NOW - 7200


async def test_passkey_verify_wants_json(harness: Harness) -> None:
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/passkey/verify", data={"credential": "x"}, headers=json_headers(harness)
    )
    assert reply.status == 400


async def test_enrolment_needs_fresh_mfa_when_a_factor_exists(harness: Harness) -> None:
    url = f"{STEP_UP_PATH}/passkey/register/options"
    stale = await harness.client.get(url, headers=json_headers(harness))
    assert stale.status == 403 and (await stale.json())["error"]["code"] == "verify_first"
    assert (
        'id="passkey-register"'
        not in await (await harness.client.get(page_url(), headers=harness.headers())).text()
    )
    await post_totp(harness, GOOD_CODE)
    fresh = await harness.client.get(url, headers=json_headers(harness))
    assert fresh.status == 200


async def without_factors(harness: Harness) -> None:
    await harness.store.set_factor("alice", MfaMethod.TOTP, active=False, at=NOW)


async def other_session(harness: Harness, **changes: Any) -> dict[str, str]:
    """JSON headers (cookie, CSRF) of a second session of alice."""
    token, ref = new_session_token("alice")
    await harness.store.create(ref, alice_session(ref.session_id, **changes))
    csrf = csrf_token(SIGNER.subkey("csrf"), ref.session_id)
    return harness.headers(session=token, csrf=csrf) | {"X-CSRF-Token": csrf}


async def register(harness: Harness, headers: dict[str, str]) -> ClientResponse:
    return await harness.client.post(
        f"{STEP_UP_PATH}/passkey/register", json={"credential": {"id": "abc"}}, headers=headers
    )


async def test_a_session_without_a_grant_cannot_enrol_a_first_factor(harness: Harness) -> None:
    """A stolen cookie of a user with no factor must not be able to mint its own MFA."""
    await without_factors(harness)
    text = await (await harness.client.get(page_url(), headers=harness.headers())).text()
    assert 'id="passkey-register"' not in text and "sign in again" in text
    url = f"{STEP_UP_PATH}/passkey/register/options"
    options = await harness.client.get(url, headers=json_headers(harness))
    assert options.status == 403
    assert (await options.json())["error"]["code"] == "enrolment_grant_required"
    reply = await register(harness, json_headers(harness))
    assert reply.status == 403 and harness.passkeys.registered == []


async def test_an_enrolment_grant_allows_one_first_factor_registration(harness: Harness) -> None:
    await without_factors(harness)
    headers = await other_session(harness, enrolment_grant_until=NOW + 600)
    text = await (await harness.client.get(page_url(), headers=headers)).text()
    assert 'id="passkey-register"' in text and 'id="code"' not in text
    options = await harness.client.get(f"{STEP_UP_PATH}/passkey/register/options", headers=headers)
    assert options.status == 200
    assert (await register(harness, headers)).status == 200
    assert harness.passkeys.registered == ['{"id": "abc"}']
    # Used up: the same session cannot add another one without verifying first.
    again = await register(harness, headers)
    assert again.status == 403 and (await again.json())["error"]["code"] == (
        "enrolment_grant_required"
    )
    assert len(harness.passkeys.registered) == 1


async def test_an_expired_enrolment_grant_is_refused(harness: Harness) -> None:
    await without_factors(harness)
    headers = await other_session(harness, enrolment_grant_until=NOW)
    assert (await register(harness, headers)).status == 403
    assert harness.passkeys.registered == []


async def test_a_failed_registration_uses_up_the_grant(harness: Harness) -> None:
    await without_factors(harness)
    headers = await other_session(harness, enrolment_grant_until=NOW + 600)
    harness.passkeys.result = MfaResult.INVALID
    assert (await register(harness, headers)).status == 401
    harness.passkeys.result = MfaResult.OK
    assert (await register(harness, headers)).status == 403
    assert len(harness.passkeys.registered) == 1


async def test_concurrent_registrations_share_one_grant(harness: Harness) -> None:
    await without_factors(harness)
    headers = await other_session(harness, enrolment_grant_until=NOW + 600)
    replies = await asyncio.gather(*(register(harness, headers) for _ in range(20)))
    assert sorted(r.status for r in replies) == [200] + [403] * 19
    assert len(harness.passkeys.registered) == 1


async def test_a_grant_does_not_replace_fresh_mfa_once_a_factor_exists(harness: Harness) -> None:
    headers = await other_session(harness, enrolment_grant_until=NOW + 600)
    reply = await register(harness, headers)
    assert reply.status == 403 and (await reply.json())["error"]["code"] == "verify_first"
    assert harness.passkeys.registered == []


async def test_a_verification_reports_the_session_and_the_verifying_device() -> None:
    """Device risk promotes what this session's refused attempt from this device saw."""
    store, verified = MemorySessionStore(), []
    token, ref = new_session_token("alice")
    await store.create(ref, alice_session(ref.session_id))
    await store.set_factor("alice", MfaMethod.TOTP, active=True, at=NOW - 86400)

    async def on_verified(session: SessionRef, device_id: str) -> None:
        verified.append((session, device_id))

    app = build_web_app(
        store=store, totp=FakeTotp(), passkeys=FakePasskeys(), signer=SIGNER, cookie_name=COOKIE,
        clock=lambda: NOW, on_verified=on_verified, device_header="x-device-id",
    )  # fmt: skip
    async with TestClient(TestServer(app), cookie_jar=DummyCookieJar()) as client:
        csrf = csrf_token(SIGNER.subkey("csrf"), ref.session_id)
        cookie = f"{COOKIE}={token}; {CSRF_COOKIE}={csrf}"
        headers = {"Host": HOST, "Cookie": cookie, "x-device-id": "phone-9"}
        for code in ("654321", GOOD_CODE):  # a wrong code reports nothing
            form = {"code": code, "csrf": csrf, "return_to": return_token()}
            await client.post(
                f"{STEP_UP_PATH}/totp", data=form, headers=headers, allow_redirects=False
            )
    assert verified == [(ref, "phone-9")]


# --- bodies and headers a client chose byte by byte (web/bodies.py, web/csrf.py) ----------


async def test_passkey_json_nested_past_the_recursion_limit_is_a_400(harness: Harness) -> None:
    """json.loads raised RecursionError (not ValueError) through request.json(): a 500."""
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/passkey/verify",
        data="[" * 5000 + "]" * 5000,  # 10 kB: under the body limit
        headers=json_headers(harness) | {"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert (await reply.json())["error"]["code"] == "bad_request"


async def test_a_credential_nested_deeper_than_any_real_one_is_a_400(harness: Harness) -> None:
    """Shallow enough to load, but re-encoded and parsed again downstream: refused first."""
    credential: object = {}
    for _ in range(40):
        credential = {"x": credential}
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/passkey/verify",
        json={"credential": credential, "return_to": ""},
        headers=json_headers(harness),
    )
    assert reply.status == 400
    assert (await harness.session()).mfa_verified_at == NOW - 7200


async def test_a_form_body_that_is_not_utf8_is_refused_not_a_500(harness: Harness) -> None:
    """aiohttp's request.post() raised UnicodeDecodeError: now an empty form, so CSRF fails."""
    reply = await harness.client.post(
        f"{STEP_UP_PATH}/totp",
        data=f"code={GOOD_CODE}&csrf={harness.csrf}&x=\xff".encode("latin-1"),
        headers=harness.headers(csrf=harness.csrf)
        | {"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert reply.status == 403 and harness.totp.calls == []


async def test_csrf_header_bytes_that_are_not_utf8_are_refused_not_a_500(
    harness: Harness,
) -> None:
    """`X-CSRF-Token: \\xff` reaches is_valid_csrf as '\\udcff' (surrogateescape)."""
    assert harness.client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.client.port)
    cookie = harness.headers(csrf=harness.csrf)["Cookie"].encode()
    writer.write(
        b"GET " + f"{STEP_UP_PATH}/passkey/options".encode() + b" HTTP/1.1\r\n"
        b"Host: " + HOST.encode() + b"\r\nCookie: " + cookie + b"\r\n"
        b"X-CSRF-Token: \xff\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    status_line = (await reader.readline()).decode()
    writer.close()
    await writer.wait_closed()
    assert status_line.split()[1] == "403", status_line
