"""Step-up request handlers: the page, the TOTP form, and the passkey JSON endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from admitd.mfa.ports import MfaResult, PasskeyFactor, TotpFactor
from admitd.sessions import MfaMethod, Session, SessionRef, SessionStore, parse_session_token
from admitd.web.bodies import form_fields, json_object
from admitd.web.csrf import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_token, is_valid_csrf
from admitd.web.pages import (
    SIGN_OUT_PATH,
    FreshView,
    StepUpView,
    fresh_page,
    message_page,
    step_up_page,
)
from admitd.web.return_to import STEP_UP_PATH, STEP_UP_PREFIX, ReturnToSigner
from admitd.web.risk_words import SIGNAL_WORDS, age_in_words, minutes_in_words
from admitd.web.step_up_reason import REASON_KEY_LABEL, StepUpReason, verify_reason

__all__ = ["OIDC_LOGOUT_PATH", "SIGNED_OUT_PATH", "Caller", "StepUp", "VerifiedHook"]

# oidc/handlers.py LOGOUT_PATH (a test keeps them equal; importing it here would be a cycle):
# with `oidc:` it also ends the IdP session, so the pages post there when it is routed.
OIDC_LOGOUT_PATH = f"{STEP_UP_PREFIX}/logout"
SIGNED_OUT_PATH = f"{STEP_UP_PATH}/signed-out"

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
class _Target:
    """Where the page sends the browser back, and why it asks: both verified, or empty."""

    token: str = ""
    path: str = ""
    reason_value: str = ""
    reason: StepUpReason | None = None


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
        query = request.query
        target = self._target(request, query.get("return_to", ""), query.get("reason", ""))
        added = query.get("added") == "passkey" and MfaMethod.PASSKEY in caller.session.factors
        if self._is_fresh(caller.session, target):
            if target.path and not added:
                raise web.HTTPSeeOther(target.path)  # nothing to ask: straight back
            notice = "Passkey added. Use it next time you are asked." if added else ""
            return self._render_fresh(request, caller, target, notice)
        expired = query.get("return_to") and not target.path
        notice = "The page you came from expired; you'll go home." if expired else ""
        if added:
            notice = 'Passkey added. Next: choose "Use a passkey" below to finish this check.'
        return self._render(request, caller, target, notice=notice)

    async def sign_out(self, request: web.Request) -> web.Response:
        """Revoke the session and clear its cookie (POST, CSRF-checked like the TOTP form)."""
        caller = await self._caller(request)
        if caller is not None:
            form = await form_fields(request)
            if not self._csrf_ok(request, caller, str(form.get(CSRF_FIELD, ""))):
                return _refused()
            await self.store.revoke(caller.ref)
        response = web.HTTPSeeOther(SIGNED_OUT_PATH)
        response.del_cookie(self.cookie_name, path="/", secure=True, httponly=True, samesite="Lax")
        response.del_cookie(CSRF_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        raise response

    async def signed_out(self, _request: web.Request) -> web.Response:
        message = "Your session has ended on this device."
        text = message_page("You're signed out", message, link=("Sign in again", "/"))
        return web.Response(text=text, content_type="text/html")

    async def totp_form(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        if caller is None:
            return _no_session()
        form = await form_fields(request)
        token, code = str(form.get("return_to", "")), str(form.get("code", "")).replace(" ", "")
        if not self._csrf_ok(request, caller, str(form.get(CSRF_FIELD, ""))):
            return _refused()
        target = self._target(request, token, str(form.get("reason", "")))
        if _CODE.fullmatch(code) is None:  # not a guess worth counting
            return self._render(
                request, caller, target, error="Enter the 6-digit code.", status=401
            )
        s = caller.session
        result = await self.totp.verify(s.user_id, s.organisation, code, self.clock())
        if result is not MfaResult.OK:
            error, status = _MESSAGES[result], _status(result)
            return self._render(request, caller, target, error=error, status=status)
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
        # The next step is the step-up page again: it confirms, then offers the new passkey
        # (or, when MFA is fresh, the way on).
        document = posted.document
        target = self._target(
            request, str(document.get("return_to", "")), str(document.get("reason", ""))
        )
        return web.json_response({"registered": True, "location": _added_location(target)})

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

    def _target(self, request: web.Request, token: str, reason: str) -> _Target:
        path = self._return_path(request, token)
        if path is None:
            return _Target()
        signed = verify_reason(self.signer.subkey(REASON_KEY_LABEL), token, reason)
        return _Target(token, path, reason if signed else "", signed)

    def _is_fresh(self, session: Session, target: _Target) -> bool:
        # Only a known max age sends the browser straight back: a guess shorter than the
        # route's would bounce between the route and this page. Without a page to go back
        # to, "fresh" is the window in which this session may also add a passkey.
        age = session.mfa_age(self.clock())
        if age is None:
            return False
        if target.reason is not None:
            return age <= target.reason.max_age
        return not target.path and age <= self.enrol_max_age

    def _why(self, session: Session, reason: StepUpReason | None) -> tuple[str, ...]:
        lines = []
        if reason is not None:
            within = minutes_in_words(reason.max_age)
            lines.append(f"This page needs a second-factor check within the last {within}.")
            if reason.signals:
                words = "; ".join(SIGNAL_WORDS[signal] for signal in reason.signals)
                lines.append(f"This sign-in looks unusual: {words}.")
        age = session.mfa_age(self.clock())
        if age is None:
            lines.append("This session has not checked a second factor yet.")
        else:
            lines.append(f"Your last second-factor check was {age_in_words(age)}.")
        return tuple(lines)

    def _render(
        self,
        request: web.Request,
        caller: Caller,
        target: _Target,
        *,
        error: str = "",
        notice: str = "",
        status: int = 200,
    ) -> web.Response:
        s = caller.session
        view = StepUpView(
            csrf=caller.csrf,
            return_to=target.token,
            has_totp=MfaMethod.TOTP in s.factors,
            has_passkey=MfaMethod.PASSKEY in s.factors,
            can_enrol_passkey=self._may_enrol(s),
            error=error,
            notice=notice,
            user=s.user_id,
            organisation=s.organisation,
            destination=f"{request.host}{target.path}" if target.path else "",
            why=self._why(s, target.reason),
            reason=target.reason_value,
            sign_out=_sign_out_action(request.app),
        )
        return self._html(caller, step_up_page(view), status)

    def _render_fresh(
        self, request: web.Request, caller: Caller, target: _Target, notice: str
    ) -> web.Response:
        s = caller.session
        view = FreshView(
            csrf=caller.csrf,
            user=s.user_id,
            organisation=s.organisation,
            verified=age_in_words(s.mfa_age(self.clock()) or 0.0),
            continue_path=target.path,
            destination=f"{request.host}{target.path}",
            can_enrol_passkey=self._may_enrol(s) and MfaMethod.PASSKEY not in s.factors,
            notice=notice,
            sign_out=_sign_out_action(request.app),
        )
        return self._html(caller, fresh_page(view), 200)

    def _html(self, caller: Caller, text: str, status: int) -> web.Response:
        response = web.Response(text=text, status=status, content_type="text/html")
        response.set_cookie(
            CSRF_COOKIE, caller.csrf, path="/", secure=True, httponly=True, samesite="Strict"
        )
        return response


def _sign_out_action(app: web.Application) -> str:
    """The OIDC logout when this app routes one (it also ends the IdP session), else ours."""
    for route in app.router.routes():
        resource = route.resource
        if route.method == "POST" and resource and resource.canonical == OIDC_LOGOUT_PATH:
            return OIDC_LOGOUT_PATH
    return SIGN_OUT_PATH


def _added_location(target: _Target) -> str:
    query = {"return_to": target.token, "reason": target.reason_value, "added": "passkey"}
    return f"{STEP_UP_PATH}?{urlencode({k: v for k, v in query.items() if v})}"


def _status(result: MfaResult) -> int:
    return 429 if result is MfaResult.LOCKED_OUT else 401


def _no_session() -> web.Response:
    message = "Your session has ended. Sign in again to continue."
    text = message_page("Sign in required", message, link=("Sign in again", "/"))
    return web.Response(text=text, status=401, content_type="text/html")


def _refused() -> web.Response:
    message = "This form expired. Go back, reload and try again."
    text = message_page("Request refused", message, link=("Go to the home page", "/"))
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


async def _credential_post(
    request: web.Request, caller: Caller | web.Response
) -> _CredentialPost | web.Response:
    """The posted credential; the caller's own refusal, if any, comes first."""
    if isinstance(caller, web.Response):
        return caller
    document = await json_object(request)
    if document is None:
        return _json_error(400, "bad_request", "Expected a JSON object with a credential.")
    return _CredentialPost(caller, document, json.dumps(document.get("credential")))
