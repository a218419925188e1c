"""Browser sign-in through admitd's web app and the real IdP: start -> IdP -> callback -> session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from aiohttp import ClientResponse, DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from admitd.jwt.config import IssuerConfig
from admitd.mfa.ports import MfaResult, TotpEnrolment
from admitd.oidc import OidcConfig, OidcProvider, OidcRoutes, add_oidc_routes
from admitd.oidc.handlers import step_up_sign_in_location
from admitd.oidc.provider import HttpClient
from admitd.oidc.state import STATE_COOKIE, LoginState
from admitd.sessions import MfaMethod, Session, parse_session_token
from admitd.sessions.config import SessionsConfig
from admitd.sessions.model import user_from_session
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.web import ReturnToSigner, build_web_app
from tests.idp.harness import CLIENT_ID, CLIENT_SECRET, Idp
from tests.integration.redis_server import RedisServer, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

HOST = "admitd.test"  # the harness's default redirect URI is on this host
ORIGIN = f"https://{HOST}"
COOKIE = "__Host-admitd_session"
SIGNER = ReturnToSigner(b"k" * 32)


class NoTotp:
    """This app signs in at the IdP; the step-up factors are not exercised here."""

    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        return TotpEnrolment("", "")

    async def confirm_enrolment(self, user_id: str, org: str, code: str, now: float) -> MfaResult:
        return MfaResult.INVALID

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        return MfaResult.INVALID


class NoPasskeys:
    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        return "{}"

    async def register(self, user_id: str, org: str, credential: str, now: float) -> MfaResult:
        return MfaResult.INVALID

    async def authentication_options(self, user_id: str, now: float) -> str:
        return "{}"

    async def authenticate(self, user_id: str, org: str, credential: str, now: float) -> MfaResult:
        return MfaResult.INVALID


@dataclass
class App:
    client: TestClient  # type: ignore[type-arg]
    store: RedisSessionStore
    idp: Idp
    logins: list[tuple[Session, str, str]]
    routes: OidcRoutes


def oidc_config(idp: Idp) -> OidcConfig:
    claims = IssuerConfig(
        issuer=idp.issuer, audiences=(CLIENT_ID,), organisation_claim="org", roles_claim="groups"
    )
    return OidcConfig(
        claims=claims,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=idp.redirect_uris[0],
        post_logout_redirect_uri=f"{ORIGIN}/",
    )


@pytest.fixture
async def app(idp: Idp, redis_server: RedisServer) -> AsyncIterator[App]:
    store = RedisSessionStore(client_from_url(redis_server.url), cache_ttl=0.0)
    http = HttpClient()
    logins: list[tuple[Session, str, str]] = []

    async def on_login(session: Session, agent: str, ip: str, now: float) -> None:
        logins.append((session, agent, ip))

    web_app = build_web_app(
        store=store, totp=NoTotp(), passkeys=NoPasskeys(), signer=SIGNER, clock=time.time
    )
    routes = OidcRoutes(
        provider=OidcProvider(oidc_config(idp), http),
        store=store,
        signer=SIGNER,
        sessions=SessionsConfig(),
        origins=(ORIGIN,),
        clock=time.time,
        on_login=on_login,
    )
    add_oidc_routes(web_app, routes)
    # Cookies by hand: the test server is plain http and these cookies are Secure.
    async with TestClient(TestServer(web_app), cookie_jar=DummyCookieJar()) as client:
        yield App(client, store, idp, logins, routes)
    await http.close()
    await store.close()


async def start(app: App, return_to: str = "") -> ClientResponse:
    query = f"?return_to={quote(return_to, safe='')}" if return_to else ""
    return await app.client.get(
        f"/.admitd/oidc/start{query}", headers={"Host": HOST}, allow_redirects=False
    )


async def at_idp(app: App, authorization_url: str, user: str, **login: object) -> str:
    """The callback path and query the IdP sends the browser back to."""
    callback = await asyncio.to_thread(app.idp.sign_in, authorization_url, user, **login)  # type: ignore[arg-type]
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == app.idp.redirect_uris[0]
    return f"{parts.path}?{parts.query}"


async def callback(app: App, path: str, state_cookie: str) -> ClientResponse:
    headers = {"Host": HOST, "Cookie": f"{STATE_COOKIE}={state_cookie}"}
    return await app.client.get(path, headers=headers, allow_redirects=False)


async def signed_in(app: App, user: str, return_to: str = "", **login: object) -> ClientResponse:
    started = await start(app, return_to)
    path = await at_idp(app, started.headers["Location"], user, **login)
    return await callback(app, path, started.cookies[STATE_COOKIE].value)


async def session_of(app: App, response: ClientResponse) -> Session | None:
    ref = parse_session_token(response.cookies[COOKIE].value)
    assert ref is not None
    return await app.store.get(ref)


async def test_start_redirects_to_the_idp_with_pkce_state_and_nonce(app: App) -> None:
    response = await start(app)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(app.idp.discovery()["authorization_endpoint"] + "?")
    query = dict(parse_qsl(urlsplit(location).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert (query["client_id"], query["response_type"]) == (CLIENT_ID, "code")
    assert query["scope"] == "openid profile email" and query["state"] and query["nonce"]
    cookie = response.cookies[STATE_COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    assert cookie.value.count(".") == 2 and query["state"] not in location.split("state=")[0]


async def test_alice_gets_a_session_whose_mfa_time_is_her_auth_time(app: App) -> None:
    response = await signed_in(app, "alice", auth_age=3600)
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax"
    session = await session_of(app, response)
    assert session is not None
    assert (session.user_id, session.organisation, session.roles) == ("alice", "acme", {"admin"})
    assert session.mfa_verified_at is not None
    assert 3570 < time.time() - session.mfa_verified_at < 3630  # the IdP's login, not now
    assert session.mfa_method is MfaMethod.TOTP
    assert response.cookies[STATE_COOKIE].value == ""  # the sign-in's state is used up
    assert app.logins[-1][0].session_id == session.session_id


async def test_bob_with_a_password_only_has_no_mfa(app: App) -> None:
    session = await session_of(app, await signed_in(app, "bob"))
    assert session is not None and session.user_id == "bob"
    assert session.mfa_verified_at is None and session.mfa_method is None


async def test_the_return_to_path_round_trips(app: App) -> None:
    token = SIGNER.sign(HOST, "/reports/q?month=5", time.time())
    response = await signed_in(app, "carol", return_to=token)
    assert response.status == 303 and response.headers["Location"] == "/reports/q?month=5"


async def test_a_return_to_for_another_host_goes_home(app: App) -> None:
    token = SIGNER.sign("evil.test", "/steal", time.time())
    response = await signed_in(app, "carol", return_to=token)
    assert response.status == 303 and response.headers["Location"] == "/"


async def test_forged_state_gets_400_and_no_session(app: App) -> None:
    started = await start(app)
    path = await at_idp(app, started.headers["Location"], "bob")
    before = len(await app.store.list_user("bob"))
    forged = path.replace("state=", "state=x", 1)
    response = await callback(app, forged, started.cookies[STATE_COOKIE].value)
    assert response.status == 400 and COOKIE not in response.cookies
    assert len(await app.store.list_user("bob")) == before


async def test_a_callback_without_the_state_cookie_gets_400(app: App) -> None:
    started = await start(app)
    path = await at_idp(app, started.headers["Location"], "bob")
    response = await app.client.get(path, headers={"Host": HOST}, allow_redirects=False)
    assert response.status == 400 and COOKIE not in response.cookies


async def test_a_reused_code_gets_400(app: App) -> None:
    started = await start(app)
    path = await at_idp(app, started.headers["Location"], "bob")
    state_cookie = started.cookies[STATE_COOKIE].value
    assert (await callback(app, path, state_cookie)).status == 303
    replayed = await callback(app, path, state_cookie)  # the same callback, cookie and all
    assert replayed.status == 400 and COOKIE not in replayed.cookies


async def test_a_wrong_nonce_gets_400(app: App) -> None:
    started = await start(app)
    path = await at_idp(app, started.headers["Location"], "bob")
    key = SIGNER.subkey("oidc-state")
    real = LoginState.unseal(key, started.cookies[STATE_COOKIE].value, time.time())
    assert real is not None
    # A state cookie with the right state and verifier (the code redeems) but another nonce.
    other = replace(real, nonce="not-the-nonce-the-idp-signed").seal(key)
    response = await callback(app, path, other)
    assert response.status == 400 and COOKIE not in response.cookies


async def test_logout_revokes_and_ends_the_idp_session(app: App) -> None:
    signed = await signed_in(app, "carol")
    token = signed.cookies[COOKIE].value
    assert await session_of(app, signed) is not None
    response = await app.client.post(
        "/.admitd/logout",
        headers={"Host": HOST, "Origin": ORIGIN, "Cookie": f"{COOKIE}={token}"},
        allow_redirects=False,
    )
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert response.headers["Location"].startswith(app.idp.discovery()["end_session_endpoint"])
    assert dict(parse_qsl(location.query)) == {
        "client_id": CLIENT_ID,
        "post_logout_redirect_uri": f"{ORIGIN}/",
    }
    assert response.cookies[COOKIE].value == ""
    assert await session_of(app, signed) is None


async def test_a_cross_site_logout_is_refused_and_keeps_the_session(app: App) -> None:
    signed = await signed_in(app, "carol")
    token = signed.cookies[COOKIE].value
    for headers in ({"Origin": "https://evil.test"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        response = await app.client.post(
            "/.admitd/logout",
            headers={"Host": HOST, "Cookie": f"{COOKIE}={token}", **headers},
            allow_redirects=False,
        )
        assert response.status == 403
    assert await session_of(app, signed) is not None


# Step-up at the IdP: a Check sends the browser to the start with a signed `step_up`.


async def step_up_start(app: App, path: str = "/admin/keys", max_age: int = 300) -> ClientResponse:
    location = step_up_sign_in_location(SIGNER, HOST, path, time.time(), max_age)
    return await app.client.get(location, headers={"Host": HOST}, allow_redirects=False)


async def stepped_up(
    app: App, user: str, old_token: str, max_age: int = 300, **login: object
) -> ClientResponse:
    started = await step_up_start(app, max_age=max_age)
    path = await at_idp(app, started.headers["Location"], user, **login)
    cookies = f"{STATE_COOKIE}={started.cookies[STATE_COOKIE].value}; {COOKIE}={old_token}"
    return await app.client.get(
        path, headers={"Host": HOST, "Cookie": cookies}, allow_redirects=False
    )


async def test_a_step_up_asks_the_idp_for_a_new_login_within_max_age(app: App) -> None:
    response = await step_up_start(app, max_age=120)
    assert response.status == 302
    query = dict(parse_qsl(urlsplit(response.headers["Location"]).query))
    assert (query["max_age"], query["prompt"]) == ("120", "login")
    assert "acr_values" not in query
    plain = dict(parse_qsl(urlsplit((await start(app)).headers["Location"]).query))
    assert "max_age" not in plain and "prompt" not in plain


async def test_step_up_acr_values_are_sent_when_configured(app: App) -> None:
    app.routes.provider.config = replace(
        app.routes.provider.config, step_up_acr_values="mfa", step_up_prompt_login=False
    )
    query = dict(parse_qsl(urlsplit((await step_up_start(app)).headers["Location"]).query))
    assert query["acr_values"] == "mfa" and "prompt" not in query


async def test_a_step_up_the_browser_made_laxer_is_a_plain_sign_in(app: App) -> None:
    location = step_up_sign_in_location(SIGNER, HOST, "/admin/keys", time.time(), 300)
    laxer = location.replace("step_up=300.", "step_up=86400.")
    response = await app.client.get(laxer, headers={"Host": HOST}, allow_redirects=False)
    query = dict(parse_qsl(urlsplit(response.headers["Location"]).query))
    assert "max_age" not in query
    # ... whose old login does not count as a step-up: the Check would ask again.
    unsealed = LoginState.unseal(
        SIGNER.subkey("oidc-state"), response.cookies[STATE_COOKIE].value, time.time()
    )
    assert unsealed is not None and unsealed.step_up_max_age == 0


async def test_a_fresh_mfa_login_steps_up_and_replaces_the_old_session(app: App) -> None:
    old = await signed_in(app, "alice", auth_age=3600)
    old_token = old.cookies[COOKIE].value
    response = await stepped_up(app, "alice", old_token)
    assert response.status == 303 and response.headers["Location"] == "/admin/keys"
    session = await session_of(app, response)
    assert session is not None and session.user_id == "alice"
    assert session.mfa_verified_at is not None and time.time() - session.mfa_verified_at < 30
    old_ref = parse_session_token(old_token)
    assert old_ref is not None and await app.store.get(old_ref) is None  # revoked


async def test_an_old_login_at_the_idp_is_explained_not_looped(app: App) -> None:
    old_token = (await signed_in(app, "alice", auth_age=3600)).cookies[COOKIE].value
    # An IdP that ignored max_age and prompt=login: the login it reports is 20 minutes old.
    response = await stepped_up(app, "alice", old_token, auth_age=1200)
    assert response.status == 403 and "Location" not in response.headers
    page = await response.text()
    assert "did not ask you to sign in again" in page and 'action="/.admitd/logout"' in page
    assert COOKIE not in response.cookies  # no new session ...
    old_ref = parse_session_token(old_token)
    assert old_ref is not None and await app.store.get(old_ref) is not None  # ... old one kept


async def test_a_fresh_login_without_a_second_factor_is_explained(app: App) -> None:
    old_token = (await signed_in(app, "bob")).cookies[COOKIE].value
    response = await stepped_up(app, "bob", old_token)
    assert response.status == 403
    assert "without a second factor" in await response.text()
    assert COOKIE not in response.cookies


async def test_an_idp_session_carries_the_factor_the_idp_vouched_for(app: App) -> None:
    alice = await session_of(app, await signed_in(app, "alice"))
    bob = await session_of(app, await signed_in(app, "bob"))
    assert alice is not None and bob is not None
    assert user_from_session(alice).factors == {MfaMethod.TOTP}
    # By default the IdP is trusted to enrol everyone, so bob can be asked to step up there.
    assert user_from_session(bob).factors == {MfaMethod.TOTP}
    config = app.routes.provider.config
    strict = replace(config.claims, assume_mfa_enrolled=False)
    app.routes.provider.config = replace(config, claims=strict)
    bob = await session_of(app, await signed_in(app, "bob"))
    assert bob is not None and user_from_session(bob).factors == frozenset()


def callbacks(app: App, outcome: str) -> float:
    metrics = app.routes.provider.metrics
    return metrics.oidc_callbacks.labels(outcome)._value.get()  # type: ignore[no-any-return]


async def test_each_callback_outcome_is_counted(app: App) -> None:
    await signed_in(app, "carol")
    started = await start(app)
    path = await at_idp(app, started.headers["Location"], "bob")
    await callback(app, path.replace("state=", "state=x", 1), started.cookies[STATE_COOKIE].value)
    await stepped_up(app, "bob", "")
    assert [callbacks(app, o) for o in ("session", "refused", "step_up_refused")] == [1, 1, 1]
    assert callbacks(app, "unavailable") == 0
