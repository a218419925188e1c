"""The step-up web app (aiohttp): routes under /.admitd/step-up, security headers, start-up.

Envoy routes the reserved prefix `/.admitd/` here with ext_authz disabled for it:
a browser with stale MFA must reach this page without passing the check it failed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Middleware

from admitd.errors import AdmitdError
from admitd.mfa.ports import PasskeyFactor, TotpFactor
from admitd.sessions import SessionStore
from admitd.web.handlers import SIGNED_OUT_PATH, StepUp, VerifiedHook
from admitd.web.pages import SIGN_OUT_PATH, message_page
from admitd.web.return_to import STEP_UP_PATH, ReturnToSigner

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "SECURITY_HEADERS",
    "build_web_app",
    "security_headers",
    "start_web_server",
]

log = logging.getLogger(__name__)

DEFAULT_COOKIE_NAME = "__Host-admitd_session"
_MAX_BODY = 64 * 1024  # a WebAuthn response is a few KiB
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'{form_targets}; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    # The page carries a CSRF token and the return_to: never cache it anywhere.
    "Cache-Control": "no-store",
    "Content-Security-Policy": _CSP.format(form_targets=""),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The URL holds the return_to token; do not hand it to anyone else.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # RFC 6797: after one https visit the browser refuses plain http to this host (and its
    # subdomains) for a year, so no one on the network can strip TLS from the step-up
    # page or the session cookie. One year is what browsers' preload lists ask for; we
    # do not add `preload`, a commitment for the whole registrable domain that only its
    # owner can make. admitd only answers behind Envoy's TLS listener anyway.
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
}


def security_headers(form_targets: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers every page gets; `form_targets` are origins a form's redirect may reach
    (browsers apply `form-action` to every redirect after a submit: sign-out goes on to
    the IdP's end-session endpoint)."""
    extra = "".join(f" {origin}" for origin in form_targets)
    return {**SECURITY_HEADERS, "Content-Security-Policy": _CSP.format(form_targets=extra)}


_ASSETS = {"passkey.js": "text/javascript", "step-up.css": "text/css"}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_web_app(
    *,
    store: SessionStore,
    totp: TotpFactor,
    passkeys: PasskeyFactor,
    signer: ReturnToSigner,
    cookie_name: str = DEFAULT_COOKIE_NAME,
    clock: Callable[[], float],
    enrol_max_age: float = 300.0,
    on_verified: VerifiedHook | None = None,
    device_header: str = "x-device-id",
    form_targets: tuple[str, ...] = (),
) -> web.Application:
    """The step-up app; `clock` returns Unix seconds (a seam for tests). `on_verified`
    runs after each successful verification, with the request's `device_header` value."""
    step_up = StepUp(
        store=store,
        totp=totp,
        passkeys=passkeys,
        signer=signer,
        cookie_name=cookie_name,
        clock=clock,
        csrf_key=signer.subkey("csrf"),
        enrol_max_age=enrol_max_age,
        on_verified=on_verified,
        device_header=device_header,
    )
    headers = _security_headers(security_headers(form_targets))
    app = web.Application(middlewares=[headers, _fail_closed], client_max_size=_MAX_BODY)
    app.router.add_get(STEP_UP_PATH, step_up.page)
    app.router.add_post(f"{STEP_UP_PATH}/totp", step_up.totp_form)
    app.router.add_get(f"{STEP_UP_PATH}/passkey/options", step_up.passkey_options)
    app.router.add_post(f"{STEP_UP_PATH}/passkey/verify", step_up.passkey_verify)
    app.router.add_get(f"{STEP_UP_PATH}/passkey/register/options", step_up.register_options)
    app.router.add_post(f"{STEP_UP_PATH}/passkey/register", step_up.register)
    app.router.add_post(SIGN_OUT_PATH, step_up.sign_out)
    app.router.add_get(SIGNED_OUT_PATH, step_up.signed_out)
    for name, content_type in _ASSETS.items():
        app.router.add_get(f"{STEP_UP_PATH}/{name}", _asset(name, content_type))
    return app


async def start_web_server(app: web.Application, listen: str) -> web.AppRunner:
    """Serve `app` on HOST:PORT; stop it with `await runner.cleanup()`."""
    host, _, port = listen.rpartition(":")
    # No access log: request lines carry return_to tokens.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    return runner


def _asset(name: str, content_type: str) -> _Handler:
    body = resources.files("admitd").joinpath("templates", name).read_bytes()

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return handler


def _security_headers(headers: dict[str, str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and aiohttp's own 404/405 get them too
            exc.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return middleware


@web.middleware
async def _fail_closed(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """A store or KMS failure is a 503 that says nothing about why (the log does); a bug is
    our own 500 page, so it still carries the security headers and never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except AdmitdError as exc:
        log.error("step-up request failed: %s", type(exc).__name__)
        text = message_page("Temporarily unavailable", "Please try again in a moment.")
        return web.Response(text=text, status=503, content_type="text/html")
    except Exception as exc:
        # The type and where, not the message: it may quote what the request carried.
        log.error("step-up request failed unexpectedly: %s at %s", type(exc).__name__, _where(exc))
        text = message_page("Something went wrong", "Please try again in a moment.")
        return web.Response(text=text, status=500, content_type="text/html")


def _where(exc: BaseException) -> str:
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return "?" if frame is None else f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}"
