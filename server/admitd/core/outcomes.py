"""Build decisions: allow (with upstream headers), deny, step up, and surface risk."""

from __future__ import annotations

import re
from dataclasses import replace

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.identity import ClientIdentity, User
from admitd.core.risk import RiskAssessment
from admitd.core.route import PolicySet, Route
from admitd.core.session_phase import SessionVerdict

__all__ = [
    "ADMITD_HEADER_PREFIX",
    "FORWARDED_CERT_HEADERS",
    "allow",
    "deny",
    "step_up",
    "with_risk",
    "with_step_up_url",
    "without_session_credentials",
]

ADMITD_HEADER_PREFIX = "x-admitd-"
# Headers that carry a forwarded certificate; from anyone but a trusted proxy they
# are ignored (admitd.certs), and removed before the request reaches the upstream.
FORWARDED_CERT_HEADERS = ("x-client-cert", "client-cert", "client-cert-chain")
PRINCIPAL_HEADER = "x-admitd-principal"
FINGERPRINT_HEADER = "x-admitd-cert-sha256"
ROUTE_HEADER = "x-admitd-route"
# Every forwarded-certificate header name is its own prefix; one startswith() per header.
_POLICED_PREFIXES = (ADMITD_HEADER_PREFIX, *FORWARDED_CERT_HEADERS)
_COOKIE_SEPARATORS = re.compile("[;,]")

_DENIAL_MESSAGES: dict[Reason, str] = {
    Reason.CERTIFICATE_MISSING: "This route requires a client certificate.",
    Reason.IDENTITY_NOT_ALLOWED: "The client certificate's identity is not allowed on this route.",
    Reason.HTTPS_REQUIRED: "This route is only served over HTTPS.",
    Reason.NO_MATCHING_ROUTE: "No policy admits this request.",
    Reason.SESSION_REQUIRED: "This route requires a signed-in session.",
    Reason.SESSION_INVALID: "The session is not valid; sign in again.",
    Reason.SESSION_EXPIRED: "The session has expired; sign in again.",
    Reason.SESSION_STORE_UNAVAILABLE: (
        "Session state is unavailable, so the request is not admitted. Try again shortly."
    ),
    Reason.MFA_ENROLLMENT_REQUIRED: (
        "Your role requires a second factor; enrol TOTP or a passkey first."
    ),
    Reason.RISK_CRITICAL: "This sign-in looks too risky to admit; contact your administrator.",
    Reason.AUTHORIZATION_UNAVAILABLE: (
        "admitd could not decide, so the request is not admitted. Try again later."
    ),
    Reason.RISK_UNAVAILABLE: (
        "Device risk cannot be assessed right now, so the request is not admitted."
        " Try again shortly."
    ),
    Reason.ROLE_REQUIRED: "Your roles do not include one this route requires.",
    Reason.CONDITION_FAILED: "The request does not meet this route's conditions.",
    Reason.RECOVERY_BLOCKED_BY_RISK: (
        "Account recovery is not available from this device or network right now."
    ),
}


def with_risk(decision: Decision, risk: RiskAssessment | None) -> Decision:
    """Surface risk level and signals to the upstream and the client (and in a denial's body)."""
    if risk is None:
        return decision
    headers = (
        ("x-admitd-risk-level", risk.level.value),
        ("x-admitd-risk-signals", risk.signal_names),
    )
    if decision.allowed:
        return replace(
            decision,
            risk=risk,
            upstream_headers=(*decision.upstream_headers, *headers),
            client_ok_headers=(*decision.client_ok_headers, *headers),
        )
    return replace(
        decision,
        risk=risk,
        client_headers=(*decision.client_headers, *headers),
        details=(
            *decision.details,
            ("risk_level", risk.level.value),
            ("risk_signals", risk.signal_names),
        ),
    )


def with_step_up_url(decision: Decision, url: str, *, browser: bool) -> Decision:
    """Point a step-up denial at the step-up page: 302 for a browser, else the URL in the body."""
    if browser:
        return replace(
            decision, redirect_to=url, client_headers=(*decision.client_headers, ("location", url))
        )
    return replace(decision, details=(*decision.details, ("step_up_url", url)))


def step_up(
    policy: PolicySet, route: Route | None, identity: ClientIdentity | None, verdict: SessionVerdict
) -> Decision:
    max_age = verdict.max_age or 0
    # RFC 9470: lets standard OAuth clients see that a fresher authentication is needed.
    challenge = f'Bearer error="insufficient_user_authentication", max_age={max_age}'
    return Decision(
        allowed=False,
        reason=Reason.MFA_STEP_UP_REQUIRED,
        message=f"A second-factor verification within the last {max_age} seconds is required.",
        route=route.name if route else "",
        identity=identity,
        client_headers=(
            ("x-admitd-reason", Reason.MFA_STEP_UP_REQUIRED.value),
            ("www-authenticate", challenge),
        ),
        policy_version=policy.version,
        user=verdict.user,
        mfa_checked=True,
        step_up_max_age=max_age,
        details=(("max_age", max_age),),
    )


def allow(
    ctx: RequestContext,
    policy: PolicySet,
    route: Route | None,
    identity: ClientIdentity | None,
    reason: Reason,
    *,
    user: User | None = None,
    mfa_checked: bool = False,
) -> Decision:
    route_name = route.name if route else "(unmatched)"
    upstream = [(ROUTE_HEADER, route_name)]
    if identity is not None:
        upstream += [
            (PRINCIPAL_HEADER, identity.principal),
            (FINGERPRINT_HEADER, identity.fingerprint_sha256),
        ]
    if user is not None:
        upstream += _user_headers(user)
    if route is not None:
        upstream += route.upstream_headers
    return Decision(
        allowed=True,
        reason=reason,
        route=route_name,
        identity=identity,
        upstream_headers=tuple(upstream),
        headers_to_remove=_headers_to_remove(ctx, {name for name, _ in upstream}),
        policy_version=policy.version,
        user=user,
        mfa_checked=mfa_checked,
    )


def without_session_credentials(decision: Decision, ctx: RequestContext, facts: Facts) -> Decision:
    """An admitted request without the identity source's own cookie or bearer token.

    The upstream gets `x-admitd-session` (an id) instead: a token it logged or leaked
    would be a live session for anyone. Other cookies and other bearer tokens stay.
    A header the route sets itself is overwritten anyway, so it is left to that.
    """
    if not decision.allowed:
        return decision
    setting = {name for name, _ in decision.upstream_headers}
    removing: list[str] = []
    adding: list[tuple[str, str]] = []
    if "authorization" not in setting and facts.credential_bearer:
        removing.append("authorization")
    others = (
        None
        if "cookie" in setting or not facts.credential_cookie
        else _cookies_without(ctx.header("cookie"), facts.credential_cookie)
    )
    if others:  # rewritten, not removed and re-added: Envoy's order of the two is not ours
        adding.append(("cookie", others))
    elif others is not None:
        removing.append("cookie")
    if not removing and not adding:
        return decision
    return replace(
        decision,
        upstream_headers=(*decision.upstream_headers, *adding),
        headers_to_remove=(*decision.headers_to_remove, *removing),
    )


def _cookies_without(header: str, name: str) -> str | None:
    """The Cookie header without every `name` cookie; None when it has none (RFC 6265 §5.4)."""
    if name not in header:  # the usual case, decided without splitting
        return None
    kept: list[str] = []
    found = False
    # "," too: Envoy joins repeated Cookie fields (RFC 6265 allows one) with ",", and no
    # cookie-octet is a comma, so no well-formed cookie is split by it.
    for raw in _COOKIE_SEPARATORS.split(header):
        pair = raw.strip()
        if pair.partition("=")[0].strip() == name:  # upstream parsers often trim names
            found = True
        elif pair:
            kept.append(pair)
    return "; ".join(kept) if found else None


def _user_headers(session: User) -> list[tuple[str, str]]:
    headers = [
        ("x-admitd-user", session.user_id),
        ("x-admitd-org", session.organisation),
        ("x-admitd-roles", ",".join(sorted(session.roles))),
        ("x-admitd-session", session.session_id[:16]),
    ]
    if session.mfa_verified_at is not None and session.mfa_method is not None:
        # The verification time, not an age: stable, so identical responses can be reused.
        headers += [
            ("x-admitd-mfa-method", session.mfa_method.value),
            ("x-admitd-mfa-verified-at", str(int(session.mfa_verified_at))),
        ]
    return headers


def _headers_to_remove(ctx: RequestContext, setting: set[str]) -> tuple[str, ...]:
    """Client-sent admitd headers we do not overwrite, and forwarded-certificate headers.

    Headers we set are overwritten instead of removed, so the outcome does not
    depend on the order in which Envoy applies removals and additions.
    """
    return tuple(
        name for name in ctx.headers if name.startswith(_POLICED_PREFIXES) and name not in setting
    )


def deny(
    ctx: RequestContext,
    policy: PolicySet,
    reason: Reason,
    *,
    detail: str = "",
    route: Route | None = None,
    identity: ClientIdentity | None = None,
) -> Decision:
    message = _DENIAL_MESSAGES.get(reason) or _certificate_message(reason, detail)
    return Decision(
        allowed=False,
        reason=reason,
        message=message,
        route=route.name if route else "",
        identity=identity,
        client_headers=(("x-admitd-reason", reason.value),),
        policy_version=policy.version,
    )


def _certificate_message(reason: Reason, detail: str) -> str:
    if reason is Reason.REQUEST_MALFORMED:
        return f"The request is malformed: {detail}."
    return f"The client certificate was not accepted ({reason.value})" + (
        f": {detail}." if detail else "."
    )
