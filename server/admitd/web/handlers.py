"""Step-up request handlers: the page, the TOTP form, and the passkey JSON endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from admitd.mfa.ports import MfaResult, PasskeyFactor, TotpFactor
from admitd.sessions import MfaMethod, Session, SessionRef, SessionStore, parse_session_token
from admitd.web.csrf import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_token, is_valid_csrf
from admitd.web.pages import StepUpView, message_page, step_up_page
from admitd.web.return_to import ReturnToSigner

__all__ = ["Caller", "StepUp", "VerifiedHook"]

VerifiedHook = Callable[[SessionRef, str], Awaitable[None]]
_CODE = re.compile(r"[0-9]{6,8}")
_MESSAGES = {
    MfaResult.INVALID: "That did not verify. Check it and try again.",
    MfaResult.REPLAYED: "That code was already used. Wait for the next one.",
    MfaResult.LOCKED_OUT: "Too many failed attempts. Wait a few minutes, then try again.",
    MfaResult.NOT_ENROLLED: "That factor is not set up for your account.",
}


@dataclass(frozen=True, slots=True)
class Caller:
    ref: SessionRef
    session: Session
    csrf: str


@dataclass(frozen=True, slots=True)
class _CredentialPost:
    """A passkey ceremony's JSON body from a caller who passed the session and CSRF checks."""

    caller: Caller
    document: dict[str, object]
    credential: str  # the WebAuthn credential, as JSON for the factor


@dataclass(frozen=True, slots=True)
class StepUp:
    store: SessionStore
    totp: TotpFactor
    passkeys: PasskeyFactor
    signer: ReturnToSigner
    cookie_name: str
    clock: Callable[[], float]
    csrf_key: bytes
    enrol_max_age: float  # a session may add a passkey this long after a verification
    # After a verification: (session, the verifying request's device ID). Device risk
    # promotes what that session's refused attempt from the same device saw.
    on_verified: VerifiedHook | None = None
    device_header: str = "x-device-id"

    async def page(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if caller is None:
            return _no_session()
        token = request.query.get("return_to", "")
        valid = self._return_path(request, token) is not None
        notice = "" if valid or not token else "The page you came from expired; you'll go home."
        return self._render(caller, token if valid else "", notice=notice)

    async def totp_form(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if caller is None:
            return _no_session()
        form = await request.post()
        token, code = str(form.get("return_to", "")), str(form.get("code", "")).replace(" ", "")
        if not self._csrf_ok(request, caller, str(form.get(CSRF_FIELD, ""))):
            return _refused()
        if _CODE.fullmatch(code) is None:  # not a guess worth counting
            return self._render(caller, token, error="Enter the 6-digit code.", status=401)
        s = caller.session
        result = await self.totp.verify(s.user_id, s.organisation, code, self.clock())
        if result is not MfaResult.OK:
            return self._render(caller, token, error=_MESSAGES[result], status=_status(result))
        return await self._verified(request, caller, MfaMethod.TOTP, token, as_json=False)

    async def passkey_options(self, request: web.Request) -> web.Response:
        caller = await self._json_caller(request)
        if isinstance(caller, web.Response):
            return caller
        body = await self.passkeys.authentication_options(caller.session.user_id, self.clock())
        return _json_text(body)

    async def passkey_verify(self, request: web.Request) -> web.Response:
        posted = await _credential_post(request, await self._json_caller(request))
        if isinstance(posted, web.Response):
            return posted
        s = posted.caller.session
        result = await self.passkeys.authenticate(
            s.user_id, s.organisation, posted.credential, self.clock()
        )
        if result is not MfaResult.OK:
            return _json_refusal(result)
        token = str(posted.document.get("return_to", ""))
        return await self._verified(request, posted.caller, MfaMethod.PASSKEY, token, as_json=True)

    async def register_options(self, request: web.Request) -> web.Response:
        caller = await self._enrolling_caller(request)
        if isinstance(caller, web.Response):
            return caller
        user = caller.session.user_id
        return _json_text(await self.passkeys.registration_options(user, user, self.clock()))

    async def register(self, request: web.Request) -> web.Response:
        posted = await _credential_post(request, await self._enrolling_caller(request))
        if isinstance(posted, web.Response):
            return posted
        s, ref = posted.caller.session, posted.caller.ref
        # Single use, taken before the ceremony is checked: of concurrent attempts only one
        # gets it, and a failed attempt uses it up too (sign in again for a new one).
        if not s.factors and not await self.store.take_enrolment_grant(ref, self.clock()):
            return _no_enrolment_grant()
        result = await self.passkeys.register(
            s.user_id, s.organisation, posted.credential, self.clock()
        )
        if result is not MfaResult.OK:
            return _json_refusal(result)
        return web.json_response({"registered": True})

    async def _caller(self, request: web.Request) -> Caller | None:
        """The session behind the cookie; Bearer tokens are for API clients, not this page."""
        ref = parse_session_token(request.cookies.get(self.cookie_name, ""))
        session = await self.store.get(ref) if ref is not None else None
        if ref is None or session is None or session.is_expired(self.clock()):
            return None
        return Caller(ref, session, csrf_token(self.csrf_key, ref.session_id))

    async def _json_caller(self, request: web.Request) -> Caller | web.Response:
        caller = await self._caller(request)
        if caller is None:
            return _json_error(401, "no_session", "Sign in again, then retry.")
        if not self._csrf_ok(request, caller, request.headers.get(CSRF_HEADER, "")):
            return _json_error(403, "csrf", "Reload the page and try again.")
        return caller

    async def _enrolling_caller(self, request: web.Request) -> Caller | web.Response:
        caller = await self._json_caller(request)
        if isinstance(caller, web.Response) or self._may_enrol(caller.session):
            return caller
        if caller.session.factors:
            return _json_error(403, "verify_first", "Verify with an existing factor first.")
        return _no_enrolment_grant()

    def _may_enrol(self, session: Session) -> bool:
        # A stolen session cookie must not mint its own MFA: adding a factor needs a fresh
        # verification; the very first one (nothing to verify with yet) needs the grant
        # the login service gave this session right after primary authentication.
        now = self.clock()
        if not session.factors:
            return session.has_enrolment_grant(now)
        age = session.mfa_age(now)
        return age is not None and age <= self.enrol_max_age

    def _csrf_ok(self, request: web.Request, caller: Caller, submitted: str) -> bool:
        # Fetch metadata, when the browser sends it, must say the request came from this page.
        site = request.headers.get("Sec-Fetch-Site", "same-origin")
        cookie = request.cookies.get(CSRF_COOKIE)
        same_site = site == "same-origin"
        return same_site and is_valid_csrf(self.csrf_key, caller.ref.session_id, submitted, cookie)

    def _return_path(self, request: web.Request, token: str) -> str | None:
        return self.signer.verify(token, request.host, self.clock()) if token else None

    async def _verified(
        self, request: web.Request, caller: Caller, method: MfaMethod, token: str, *, as_json: bool
    ) -> web.Response:
        if not await self.store.set_mfa(caller.ref, self.clock(), method):
            return _json_error(401, "no_session", "Sign in again.") if as_json else _no_session()
        if self.on_verified is not None:
            await self.on_verified(caller.ref, request.headers.get(self.device_header, ""))
        # Only ever a path on this host (verified against the Host header), never a URL.
        location = self._return_path(request, token) or "/"
        if as_json:
            return web.json_response({"location": location})
        raise web.HTTPSeeOther(location)

    def _render(
        self, caller: Caller, token: str, *, error: str = "", notice: str = "", status: int = 200
    ) -> web.Response:
        factors = caller.session.factors
        view = StepUpView(
            csrf=caller.csrf,
            return_to=token,
            has_totp=MfaMethod.TOTP in factors,
            has_passkey=MfaMethod.PASSKEY in factors,
            can_enrol_passkey=self._may_enrol(caller.session),
            error=error,
            notice=notice,
        )
        response = web.Response(text=step_up_page(view), status=status, content_type="text/html")
        response.set_cookie(
            CSRF_COOKIE, caller.csrf, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response


def _status(result: MfaResult) -> int:
    return 429 if result is MfaResult.LOCKED_OUT else 401


def _no_session() -> web.Response:
    text = message_page("Sign in required", "Your session has ended. Sign in again to continue.")
    return web.Response(text=text, status=401, content_type="text/html")


def _refused() -> web.Response:
    text = message_page("Request refused", "This form expired. Go back, reload and try again.")
    return web.Response(text=text, status=403, content_type="text/html")


def _no_enrolment_grant() -> web.Response:
    message = "Sign in again to add your first passkey, or ask your administrator."
    return _json_error(403, "enrolment_grant_required", message)


def _json_refusal(result: MfaResult) -> web.Response:
    return _json_error(_status(result), result.value, _MESSAGES[result])


def _json_text(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/json")


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _json_body(request: web.Request) -> dict[str, object] | None:
    if request.content_type != "application/json":
        return None  # also forces a CORS preflight on any cross-origin attempt
    try:
        document = await request.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


async def _credential_post(
    request: web.Request, caller: Caller | web.Response
) -> _CredentialPost | web.Response:
    """The posted credential; the caller's own refusal, if any, comes first."""
    if isinstance(caller, web.Response):
        return caller
    document = await _json_body(request)
    if document is None:
        return _json_error(400, "bad_request", "Expected a JSON object with a credential.")
    return _CredentialPost(caller, document, json.dumps(document.get("credential")))
