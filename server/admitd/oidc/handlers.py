"""Browser sign-in routes: /.admitd/oidc/start, /.admitd/oidc/callback, /.admitd/logout.

A callback creates a session only when every check passed: the signed state cookie, the
`state` it names, the IdP's `iss` (RFC 9207), the code (the IdP redeems it once, with the
PKCE verifier), and the ID token (signature, `iss`, `aud`, `azp`, `exp`/`iat`, `nonce`).
Anything else is a 400 page and no session: a forged or replayed callback gets nowhere.
A step-up (oidc/step_up.py) must also show a fresh second factor, or the browser gets a
403 page that explains why, and keeps the session it had.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from admitd.jwt.claims import ClaimsError, user_from_claims
from admitd.jwt.metrics import CallbackOutcome
from admitd.oidc.config import OidcConfig
from admitd.oidc.provider import CallbackRefused, OidcProvider, ProviderUnavailable
from admitd.oidc.state import STATE_COOKIE, STATE_TTL, LoginState, new_login_state, pkce_challenge
from admitd.oidc.step_up import sign_step_up, step_up_problem, verify_step_up
from admitd.sessions import Session, SessionStore, parse_session_token
from admitd.sessions.config import SessionsConfig
from admitd.web.browser_session import BrowserSessions, LoginHook, NewUser
from admitd.web.pages import html_page, message_page
from admitd.web.return_to import STEP_UP_PREFIX, ReturnToSigner, is_safe_relative_path

__all__ = [
    "LOGOUT_PATH",
    "OIDC_PREFIX",
    "LoginHook",
    "OidcRoutes",
    "add_oidc_routes",
    "sign_in_location",
    "step_up_sign_in_location",
]

log = logging.getLogger(__name__)
OIDC_PREFIX = f"{STEP_UP_PREFIX}/oidc"
LOGOUT_PATH = f"{STEP_UP_PREFIX}/logout"


class StepUpRefused(Exception):
    """A step-up's ID token shows no fresh second factor: explained, never redirected."""


@dataclass(frozen=True, slots=True)
class OidcRoutes:
    provider: OidcProvider
    store: SessionStore
    signer: ReturnToSigner
    sessions: SessionsConfig
    origins: tuple[str, ...]  # web.origins: where a logout POST may come from
    clock: Callable[[], float]
    on_login: LoginHook | None = None
    device_header: str = "x-device-id"

    @property
    def _state_key(self) -> bytes:
        return self.signer.subkey("oidc-state")

    @property
    def _browser_sessions(self) -> BrowserSessions:
        return BrowserSessions(self.store, self.sessions, self.on_login, self.device_header)

    @property
    def _step_up_key(self) -> bytes:
        return self.signer.subkey("oidc-step-up")

    async def start(self, request: web.Request) -> web.StreamResponse:
        """302 to the IdP's authorization endpoint (code flow, PKCE S256, state, nonce)."""
        try:
            meta = await self.provider.metadata()
        except ProviderUnavailable as exc:
            return _unavailable(exc)
        now = self.clock()
        token = request.query.get("return_to", "")
        path = (self.signer.verify(token, request.host, now) if token else None) or "/"
        # A step-up only with the link a Check signed: a browser cannot ask for a laxer one.
        max_age = verify_step_up(self._step_up_key, token, request.query.get("step_up", ""))
        login = new_login_state(path, now, max_age or 0)
        config = self.provider.config
        query = {
            "response_type": "code",
            "client_id": config.client_id,
            "redirect_uri": config.redirect_uri,
            "scope": " ".join(config.scopes),
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": pkce_challenge(login.verifier),
            "code_challenge_method": "S256",
            **_step_up_parameters(login.step_up_max_age, config),
        }
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        response = _redirect(302, meta.authorization_endpoint + separator + urlencode(query))
        response.set_cookie(
            STATE_COOKIE, login.seal(self._state_key), path="/", max_age=STATE_TTL,
            secure=True, httponly=True, samesite="Lax",
        )  # fmt: skip
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """The IdP's redirect back: a session and a 303 to the return path, or a 400 page."""
        try:
            login = self._login_state(request)
            session, token = await self._session_for(request, login)
        except CallbackRefused as exc:
            log.warning("oidc callback refused: %s", exc)
            self.provider.metrics.callback(CallbackOutcome.REFUSED)
            return _refused()
        except StepUpRefused as exc:
            log.warning("oidc step-up refused: %s", exc)
            self.provider.metrics.callback(CallbackOutcome.STEP_UP_REFUSED)
            return _step_up_refused(str(exc), login.return_path)
        except ProviderUnavailable as exc:
            self.provider.metrics.callback(CallbackOutcome.UNAVAILABLE)
            return _unavailable(exc)
        self.provider.metrics.callback(CallbackOutcome.SESSION)
        response = _redirect(303, login.return_path)
        response.del_cookie(STATE_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
        self._browser_sessions.set_cookie(response, session, token)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """Revoke the session, clear the cookie, and end the IdP session when it can."""
        if not self._same_origin(request):
            text = message_page("Request refused", "Sign out from a page of this site.")
            return web.Response(text=text, status=403, content_type="text/html")
        ref = parse_session_token(request.cookies.get(self.sessions.cookie_name, ""))
        if ref is not None:
            await self.store.revoke(ref)
        response = _redirect(303, await self._after_logout())
        response.del_cookie(
            self.sessions.cookie_name, path="/", secure=True, httponly=True, samesite="Lax"
        )
        return response

    def _login_state(self, request: web.Request) -> LoginState:
        cookie = request.cookies.get(STATE_COOKIE, "")
        login = LoginState.unseal(self._state_key, cookie, self.clock())
        if login is None:
            raise CallbackRefused("no valid state cookie (expired, forged or already used)")
        sent = request.query.get("state", "")
        if not hmac.compare_digest(sent.encode(), login.state.encode()):
            raise CallbackRefused("state does not match the cookie")
        iss = request.query.get("iss")
        if iss is not None and iss != self.provider.config.issuer:  # RFC 9207 mix-up defence
            raise CallbackRefused("iss names another issuer")
        if "error" in request.query:
            raise CallbackRefused(f"the IdP answered error {request.query['error'][:64]!r}")
        return login

    async def _session_for(self, request: web.Request, login: LoginState) -> tuple[Session, str]:
        code = request.query.get("code", "")
        if not code:
            raise CallbackRefused("no code")
        now = self.clock()
        id_token = await self.provider.exchange(code, login.verifier)
        claims = await self.provider.verify_id_token(id_token, login.nonce, now)
        try:
            user = user_from_claims(claims, self.provider.config.claims, "")
        except ClaimsError as exc:
            raise CallbackRefused(str(exc)) from None
        if login.step_up_max_age:
            leeway = self.provider.config.claims.leeway_seconds
            problem = step_up_problem(claims, user, login.step_up_max_age, now, leeway)
            if problem is not None:
                raise StepUpRefused(problem)
        new_user = NewUser(
            user.user_id,
            user.organisation,
            user.roles,
            # auth_time, and only when amr/acr say it was a second factor (jwt/claims.py).
            mfa_verified_at=user.mfa_verified_at,
            mfa_method=user.mfa_method,
            idp_factors=user.factors,
        )
        session, _, token = await self._browser_sessions.start(request, new_user, now)
        await self._revoke_previous(request)
        return session, token

    async def _revoke_previous(self, request: web.Request) -> None:
        # The browser's cookie is about to be replaced: its old session (a sign-in before,
        # or the one a step-up refreshes) must not stay usable by whoever copied it.
        old = parse_session_token(request.cookies.get(self.sessions.cookie_name, ""))
        if old is not None:
            await self.store.revoke(old)

    def _same_origin(self, request: web.Request) -> bool:
        # Logout is a state change: only a form on one of our origins may ask for it.
        # Fetch metadata first, then Origin (sent on every cross-origin POST).
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site == "same-origin"
        return request.headers.get("Origin") in self.origins

    async def _after_logout(self) -> str:
        config = self.provider.config
        try:
            endpoint = (await self.provider.metadata()).end_session_endpoint
        except ProviderUnavailable:
            endpoint = ""
        if not endpoint:
            return "/"
        # RP-Initiated Logout 1.0 §2: client_id identifies us without keeping the ID token.
        query = {"client_id": config.client_id}
        query["post_logout_redirect_uri"] = config.post_logout_redirect_uri
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)


def sign_in_location(signer: ReturnToSigner, host: str, path: str, now: float) -> str:
    """Where a browser with no session is sent: the sign-in start, remembering `path`."""
    target = path if is_safe_relative_path(path) else "/"
    return f"{OIDC_PREFIX}/start?return_to={quote(signer.sign(host, target, now), safe='')}"


def step_up_sign_in_location(
    signer: ReturnToSigner, host: str, path: str, now: float, max_age: int
) -> str:
    """Where a browser with stale MFA is sent when the IdP does the step-up: the sign-in
    start, remembering `path` and asking for a login within `max_age` seconds."""
    target = path if is_safe_relative_path(path) else "/"
    token = signer.sign(host, target, now)
    step_up = sign_step_up(signer.subkey("oidc-step-up"), token, max_age)
    return (
        f"{OIDC_PREFIX}/start?return_to={quote(token, safe='')}&step_up={quote(step_up, safe='')}"
    )


def _step_up_parameters(max_age: int, config: OidcConfig) -> dict[str, str]:
    """OpenID Connect Core §3.1.2.1: `max_age` makes the IdP re-authenticate a login older
    than that; `prompt=login` and `acr_values` ask for a fresh, stronger one outright."""
    if not max_age:
        return {}
    parameters = {"max_age": str(max_age)}
    if config.step_up_prompt_login:
        parameters["prompt"] = "login"
    if config.step_up_acr_values:
        parameters["acr_values"] = config.step_up_acr_values
    return parameters


def add_oidc_routes(app: web.Application, routes: OidcRoutes) -> None:
    app.router.add_get(f"{OIDC_PREFIX}/start", routes.start)
    app.router.add_get(f"{OIDC_PREFIX}/callback", routes.callback)
    app.router.add_post(LOGOUT_PATH, routes.logout)


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _refused() -> web.Response:
    text = message_page("Sign-in failed", "This sign-in link is not valid any more. Start again.")
    response = web.Response(text=text, status=400, content_type="text/html")
    response.del_cookie(STATE_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    return response


def _step_up_refused(problem: str, return_path: str) -> web.Response:
    """Why the step-up did not count, and what to do; a link to try once more, no redirect."""
    body = (
        "<h1>Second factor not confirmed</h1>\n"
        f'<p role="alert">{escape(problem)}</p>\n'
        "<p>This page needs a recent sign-in with a second factor (an authenticator app,"
        " a security key or a passkey) at your identity provider.</p>\n"
        f'<p><a href="{escape(return_path)}">Try again</a>: you will be asked to sign in'
        " once more. If your account has no second factor, ask your administrator to set"
        " one up.</p>\n"
        f'<form method="post" action="{LOGOUT_PATH}"><button type="submit">Sign out</button>'
        "</form>"
    )
    text = html_page("Second factor not confirmed", body)
    response = web.Response(text=text, status=403, content_type="text/html")
    response.del_cookie(STATE_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    return response


def _unavailable(exc: ProviderUnavailable) -> web.Response:
    log.error("identity provider unavailable: %s", exc)
    text = message_page("Sign-in unavailable", "The sign-in service cannot be reached. Try again.")
    return web.Response(text=text, status=503, content_type="text/html")
