"""A denial as a browser sees it: a small HTML page with the same status and headers.

Only for a browser navigation (`Decision.page`, set by the engine); API clients keep the
JSON body byte for byte. The page says what happened in plain words, what to do next, and
the reason code and request id for support. It is self-contained: Envoy answers it from
ext_authz even where admitd's web app is not routed, so its one stylesheet is inline and
allowed by its hash in the CSP (no script at all).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

from envoy.service.auth.v3.external_auth_pb2 import CheckResponse, DeniedHttpResponse
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.rpc import code_pb2, status_pb2

from admitd.core.decision import Decision, Reason
from admitd.extauthz.response import header_options

__all__ = ["DenialPages", "page_text"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;background:#f4f5f7;"
    "color:#111}main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;"
    "border-radius:8px}h1{margin-top:0;font-size:1.6rem}dl{display:grid;"
    "grid-template-columns:auto 1fr;gap:.25rem 1rem;font-size:.9rem;color:#333}"
    "dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}a{color:#1a5fb4}"
    "ul{padding-left:1.25rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_HEADERS = (
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
)
# The client's own response headers that stay (the JSON body's content-type does not).
_KEPT = ("x-admitd-", "www-authenticate", "location")

_CERTIFICATE = {
    Reason.CERTIFICATE_MISSING,
    Reason.CERTIFICATE_MALFORMED,
    Reason.CERTIFICATE_CHAIN_TOO_LONG,
    Reason.CERTIFICATE_EXPIRED,
    Reason.CERTIFICATE_NOT_YET_VALID,
    Reason.CERTIFICATE_UNTRUSTED,
    Reason.CERTIFICATE_NO_CLIENT_AUTH,
    Reason.CERTIFICATE_REVOKED,
    Reason.CERTIFICATE_REVOCATION_UNKNOWN,
}
_TRY_AGAIN = "Try again in a minute. If it keeps happening, contact support with the details below."
_ASK = "If you need access, ask your administrator, and give them the details below."
# reason -> (title, what happened, what to do next)
_TEXT: dict[Reason, tuple[str, str, str]] = {
    Reason.CERTIFICATE_MISSING: (
        "Certificate required",
        "This page needs a client certificate, and your browser did not present one.",
        "Install your certificate in this browser (or pick it when asked), then reload.",
    ),
    Reason.CERTIFICATE_EXPIRED: (
        "Certificate expired",
        "The client certificate your browser presented has expired.",
        "Get a new certificate, install it in this browser, then reload.",
    ),
    Reason.CERTIFICATE_NOT_YET_VALID: (
        "Certificate not yet valid",
        "The client certificate your browser presented is not valid yet.",
        "Check this device's clock, or wait until the certificate's start date.",
    ),
    Reason.CERTIFICATE_REVOKED: (
        "Certificate revoked",
        "The client certificate your browser presented has been revoked.",
        "Get a new certificate from your administrator.",
    ),
    Reason.CERTIFICATE_REVOCATION_UNKNOWN: (
        "Certificate cannot be checked",
        "Whether your certificate was revoked cannot be checked right now.",
        _TRY_AGAIN,
    ),
    Reason.IDENTITY_NOT_ALLOWED: (
        "Access denied",
        "Your client certificate is valid, but its identity may not use this page.",
        _ASK,
    ),
    Reason.HTTPS_REQUIRED: (
        "HTTPS required",
        "This page is only served over HTTPS.",
        "Open it with https:// instead.",
    ),
    Reason.NO_MATCHING_ROUTE: ("Not available", "Nothing is served at this address.", _ASK),
    Reason.REQUEST_MALFORMED: (
        "Bad request",
        "The request could not be understood.",
        "Check the address and try again.",
    ),
    Reason.AUTHORIZATION_UNAVAILABLE: (
        "Temporarily unavailable",
        "Access could not be checked, so the page is not shown.",
        _TRY_AGAIN,
    ),
    Reason.SESSION_REQUIRED: (
        "Sign-in required",
        "This page needs you to be signed in.",
        "Sign in, then open this page again.",
    ),
    Reason.SESSION_INVALID: (
        "Signed out",
        "Your sign-in is not valid any more (you signed out, or it was revoked).",
        "Sign in again, then open this page again.",
    ),
    Reason.SESSION_EXPIRED: (
        "Session expired",
        "Your sign-in has expired.",
        "Sign in again, then open this page again.",
    ),
    Reason.SESSION_STORE_UNAVAILABLE: (
        "Temporarily unavailable",
        "Your sign-in cannot be checked right now, so the page is not shown.",
        _TRY_AGAIN,
    ),
    Reason.TOKEN_INVALID: (
        "Sign-in not accepted",
        "The token sent with this request is not valid.",
        "Sign in again at your identity provider.",
    ),
    Reason.TOKEN_EXPIRED: (
        "Sign-in expired",
        "The token sent with this request has expired.",
        "Sign in again at your identity provider.",
    ),
    Reason.IDENTITY_PROVIDER_UNAVAILABLE: (
        "Temporarily unavailable",
        "The identity provider cannot be reached, so your sign-in cannot be checked.",
        _TRY_AGAIN,
    ),
    Reason.MFA_ENROLLMENT_REQUIRED: (
        "Second factor required",
        "Your role needs a second factor (an authenticator app or a passkey), and your"
        " account has none.",
        "Ask your administrator to set one up for you, then sign in again.",
    ),
    Reason.MFA_STEP_UP_REQUIRED: (
        "Verification required",
        "This page needs a recent check of your second factor.",
        "Verify with your authenticator app or passkey, then open this page again.",
    ),
    Reason.RISK_CRITICAL: (
        "Sign-in blocked",
        "This sign-in looks too risky to allow (an unusual device or place).",
        "Contact your administrator or security team with the details below.",
    ),
    Reason.RISK_UNAVAILABLE: (
        "Temporarily unavailable",
        "The safety checks for this sign-in cannot run right now.",
        _TRY_AGAIN,
    ),
    Reason.RECOVERY_BLOCKED_BY_RISK: (
        "Recovery not available here",
        "Account recovery is not available from this device or network right now.",
        "Try again from a device and network you usually use, or contact your administrator.",
    ),
    Reason.ROLE_REQUIRED: (
        "Access denied",
        "You are signed in, but your account does not have a role this page needs.",
        _ASK,
    ),
    Reason.SCOPE_REQUIRED: (
        "Access denied",
        "Your sign-in was not granted the permission (scope) this page needs.",
        _ASK,
    ),
    Reason.CONDITION_FAILED: (
        "Access denied",
        "This request does not meet the conditions for this page.",
        _ASK,
    ),
}
_INVALID_CERTIFICATE = (
    "Certificate not accepted",
    "The client certificate your browser presented was not accepted.",
    "Install a valid certificate in this browser, then reload.",
)


def page_text(reason: Reason) -> tuple[str, str, str]:
    """(title, what happened, what to do next) for a denial reason."""
    if reason in _TEXT:
        return _TEXT[reason]
    if reason in _CERTIFICATE:
        return _INVALID_CERTIFICATE
    return ("Access denied", "This page is not available to you.", _ASK)


@dataclass(frozen=True, slots=True)
class DenialPages:
    """`issuers`: the names of the CAs whose client certificates are accepted (the trust
    bundle), named on certificate pages so a person knows which certificate to find."""

    issuers: tuple[str, ...] = ()

    def response(self, decision: Decision, request_id: str) -> CheckResponse:
        """The denial `decision` as an HTML page, with its status and client headers."""
        kept = tuple((k, v) for k, v in decision.client_headers if k.startswith(_KEPT))
        return CheckResponse(
            status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
            denied_response=DeniedHttpResponse(
                status=HttpStatus(code=decision.status),
                headers=header_options((*_HEADERS, *kept)),
                body=self.html(decision, request_id),
            ),
        )

    def html(self, decision: Decision, request_id: str) -> str:
        title, happened, next_step = page_text(decision.reason)
        parts = [f"<h1>{escape(title)}</h1>", f"<p>{escape(happened)}</p>"]
        parts.append(f"<p>{escape(next_step)}</p>")
        parts += self._certificate_help(decision.reason)
        details = [("Reason", decision.reason.value), ("Request ID", request_id or "-")]
        if decision.user is not None:
            who = f"{decision.user.user_id} ({decision.user.organisation})"
            details.insert(0, ("Signed in as", who))
        parts.append(_details(details))
        return _document(title, "\n".join(parts))

    def _certificate_help(self, reason: Reason) -> list[str]:
        if reason not in _CERTIFICATE or not self.issuers:
            return []
        names = "".join(f"<li>{escape(name)}</li>" for name in self.issuers)
        return [f"<p>Certificates are accepted from:</p>\n<ul>{names}</ul>"]


def _details(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<section aria-label="Details for support"><dl>{cells}</dl></section>'


def _document(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""
