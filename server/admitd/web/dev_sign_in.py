"""The dev sign-in (`dev_mode: true` only): pick a dev user, get a real admitd session.

`admitd dev` has no IdP, so a newcomer could not walk the browser flow by hand. This page
lists `DEV_USERS`; a POST creates a session in the same store and cookie an OIDC
sign-in would, optionally begins TOTP enrolment (QR code + key), and sends the browser
back to the signed `return_to` path (same host only, else "/"). It is never registered
without `dev_mode`: anyone who reaches it can be anyone on the list.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from admitd.mfa.ports import MfaResult, TotpFactor
from admitd.sessions import (
    Session,
    SessionRef,
    SessionStore,
    parse_session_token,
)
from admitd.sessions.config import SessionsConfig
from admitd.web.bodies import form_fields
from admitd.web.browser_session import BrowserSessions, LoginHook, NewUser
from admitd.web.csrf import CSRF_COOKIE, csrf_token, is_valid_csrf
from admitd.web.dev_pages import DEV_SIGN_IN_PATH, DEV_TOTP_PATH, TotpView, sign_in_page, totp_page
from admitd.web.dev_users import DEV_USERS, DevUser
from admitd.web.pages import message_page
from admitd.web.qr_svg import qr_svg_from_text
from admitd.web.return_to import ReturnToSigner, is_safe_relative_path

__all__ = [
    "DEV_SIGN_IN_PATH",
    "DEV_TOTP_PATH",
    "LOGIN_CSRF_COOKIE",
    "DevSignIn",
    "add_dev_sign_in_routes",
    "dev_sign_in_location",
]

# Before sign-in there is no session to bind a CSRF token to: the login form's token is
# a random nonce and its MAC, double-submitted (this cookie + the form field).
LOGIN_CSRF_COOKIE = "__Host-admitd_dev_csrf"
ENROLMENT_GRANT_SECONDS = 600.0  # as a login service grants: a first passkey may be added
_CODE = re.compile(r"[0-9]{6,8}")
_MESSAGES = {
    MfaResult.INVALID: "That code did not verify. Check the time on your device and try again.",
    MfaResult.REPLAYED: "That code was already used. Wait for the next one.",
    MfaResult.LOCKED_OUT: "Too many failed attempts. Wait a few minutes, then try again.",
    MfaResult.NOT_ENROLLED: "This enrolment expired. Sign in again for a new code.",
}


@dataclass(frozen=True, slots=True)
class _Caller:
    session: Session
    ref: SessionRef


@dataclass(frozen=True, slots=True)
class DevSignIn:
    store: SessionStore
    totp: TotpFactor
    signer: ReturnToSigner
    sessions: SessionsConfig
    clock: Callable[[], float]
    on_login: LoginHook | None = None
    device_header: str = "x-device-id"
    users: tuple[DevUser, ...] = DEV_USERS

    async def page(self, request: web.Request) -> web.Response:
        """GET: the users to pick from; the return_to is kept only when it verifies."""
        token = request.query.get("return_to", "")
        return self._sign_in_form(token if self._return_path(request, token) else "")

    async def sign_in(self, request: web.Request) -> web.Response:
        """POST: a session for the picked user, then the return path (or the TOTP page)."""
        form = await form_fields(request)
        if not self._login_csrf_ok(request, str(form.get("csrf", ""))):
            return _refused()
        token = str(form.get("return_to", ""))
        path = self._return_path(request, token)
        user = self._user(str(form.get("user", "")))
        if user is None:
            kept = token if path else ""
            return self._sign_in_form(kept, error="Pick one of the listed users.", status=400)
        path = path or "/"
        caller, cookie = await self._new_session(request, user)
        if form.get("enrol_totp"):
            response = await self._enrolment(request, caller, path)
        else:
            response = _redirect(path)
        response.del_cookie(LOGIN_CSRF_COOKIE, path="/", secure=True, httponly=True)
        self._browser_sessions.set_cookie(response, caller.session, cookie)
        return response

    async def confirm_totp(self, request: web.Request) -> web.Response:
        """POST: activate the pending TOTP secret with a first code, then the return path."""
        caller = await self._caller(request)
        if caller is None:
            text = message_page("Sign in required", "Your session has ended. Sign in again.")
            return web.Response(text=text, status=401, content_type="text/html")
        form = await form_fields(request)
        if not self._session_csrf_ok(request, caller.ref, str(form.get("csrf", ""))):
            return _refused()
        token, code = str(form.get("return_to", "")), str(form.get("code", "")).replace(" ", "")
        path = self._return_path(request, token) or "/"
        if _CODE.fullmatch(code) is None:
            return self._totp_form(request, caller, path, error="Enter the 6-digit code.")
        s = caller.session
        result = await self.totp.confirm_enrolment(s.user_id, s.organisation, code, self.clock())
        if result is not MfaResult.OK:
            status = 429 if result is MfaResult.LOCKED_OUT else 401
            return self._totp_form(request, caller, path, error=_MESSAGES[result], status=status)
        return _redirect(path)

    async def _new_session(self, request: web.Request, user: DevUser) -> tuple[_Caller, str]:
        now = self.clock()
        # No second factor was verified: privileged routes will ask for one.
        grant = now + ENROLMENT_GRANT_SECONDS
        new_user = NewUser(user.user_id, user.organisation, user.roles, enrolment_grant_until=grant)
        session, ref, token = await self._browser_sessions.start(request, new_user, now)
        return _Caller(session, ref), token

    async def _enrolment(self, request: web.Request, caller: _Caller, path: str) -> web.Response:
        s = caller.session
        enrolment = await self.totp.begin_enrolment(s.user_id, s.organisation, self.clock())
        uri = enrolment.provisioning_uri
        label = f"QR code to add {s.user_id} to an authenticator app"
        qr_svg = qr_svg_from_text(uri, label=label)
        return self._totp_form(request, caller, path, qr_svg=qr_svg, secret=_secret_of(uri))

    def _totp_form(
        self,
        request: web.Request,
        caller: _Caller,
        path: str,
        *,
        error: str = "",
        status: int = 401,
        qr_svg: str = "",
        secret: str = "",
    ) -> web.Response:
        session = caller.session
        csrf = csrf_token(self._session_csrf_key, caller.ref.session_id)
        view = TotpView(
            csrf=csrf,
            # Re-signed: the token the browser came with may expire while the phone is found.
            return_to=self.signer.sign(request.host, path, self.clock()),
            continue_path=path,
            user=f"{session.user_id} ({session.organisation})",
            qr_svg=qr_svg,
            secret=secret,
            error=error,
        )
        status = status if error else 200
        response = web.Response(text=totp_page(view), status=status, content_type="text/html")
        response.set_cookie(
            CSRF_COOKIE, csrf, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response

    def _sign_in_form(self, token: str, *, error: str = "", status: int = 200) -> web.Response:
        csrf = _login_csrf(self._login_csrf_key)
        text = sign_in_page(self.users, csrf, token, error)
        response = web.Response(text=text, status=status, content_type="text/html")
        response.set_cookie(
            LOGIN_CSRF_COOKIE, csrf, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response

    def _user(self, user_id: str) -> DevUser | None:
        return next((user for user in self.users if user.user_id == user_id), None)

    async def _caller(self, request: web.Request) -> _Caller | None:
        ref = parse_session_token(request.cookies.get(self.sessions.cookie_name, ""))
        session = await self.store.get(ref) if ref is not None else None
        if ref is None or session is None or session.is_expired(self.clock()):
            return None
        return _Caller(session, ref)

    @property
    def _browser_sessions(self) -> BrowserSessions:
        return BrowserSessions(self.store, self.sessions, self.on_login, self.device_header)

    @property
    def _login_csrf_key(self) -> bytes:
        return self.signer.subkey("dev-sign-in-csrf")

    @property
    def _session_csrf_key(self) -> bytes:
        return self.signer.subkey("csrf")  # the step-up forms' key: one CSRF cookie per session

    def _login_csrf_ok(self, request: web.Request, submitted: str) -> bool:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        return (
            _is_same_origin(request)
            and submitted.isascii()  # as the token is; never encode a lone surrogate
            and cookie.isascii()
            and hmac.compare_digest(submitted.encode(), cookie.encode())
            and _is_login_csrf(self._login_csrf_key, submitted)
        )

    def _session_csrf_ok(self, request: web.Request, ref: SessionRef, submitted: str) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE)
        key = self._session_csrf_key
        return _is_same_origin(request) and is_valid_csrf(key, ref.session_id, submitted, cookie)

    def _return_path(self, request: web.Request, token: str) -> str | None:
        return self.signer.verify(token, request.host, self.clock()) if token else None


def dev_sign_in_location(signer: ReturnToSigner, host: str, path: str, now: float) -> str:
    """Where a browser with no session is sent in dev_mode: this page, remembering `path`."""
    target = path if is_safe_relative_path(path) else "/"
    return f"{DEV_SIGN_IN_PATH}?return_to={quote(signer.sign(host, target, now), safe='')}"


def add_dev_sign_in_routes(app: web.Application, routes: DevSignIn, *, dev_mode: bool) -> bool:
    """Register the dev sign-in, only when `dev_mode` is true; False (nothing added) else."""
    if not dev_mode:
        return False
    app.router.add_get(DEV_SIGN_IN_PATH, routes.page)
    app.router.add_post(DEV_SIGN_IN_PATH, routes.sign_in)
    app.router.add_post(DEV_TOTP_PATH, routes.confirm_totp)
    return True


def _login_csrf(key: bytes) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{csrf_token(key, 'dev-sign-in/' + nonce)}"


def _is_login_csrf(key: bytes, value: str) -> bool:
    nonce, _, mac = value.partition(".")
    if not nonce or not mac:
        return False
    return hmac.compare_digest(mac.encode(), csrf_token(key, "dev-sign-in/" + nonce).encode())


def _is_same_origin(request: web.Request) -> bool:
    # Fetch metadata, when the browser sends it, must say the form came from this site.
    return request.headers.get("Sec-Fetch-Site", "same-origin") == "same-origin"


def _secret_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query).get("secret", [""])[0]


def _redirect(path: str) -> web.Response:
    # Only ever a verified relative path on this host (or "/"), never a URL.
    return web.Response(status=303, headers={"Location": path})


def _refused() -> web.Response:
    text = message_page("Request refused", "This form expired. Go back, reload and try again.")
    return web.Response(text=text, status=403, content_type="text/html")
