"""Build decisions: allow (with upstream headers), deny, step up, and surface risk."""

from __future__ import annotations

import re
from dataclasses import replace

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Headers, Reason, Step
from admitd.core.facts import Facts
from admitd.core.identity import ClientIdentity, User
from admitd.core.risk import RiskAssessment
from admitd.core.route import PolicySet, Route

__all__ = [
    "ADMITD_HEADER_PREFIX",
    "FORWARDED_CERT_HEADERS",
    "allow",
    "deny",
    "step_up",
    "with_step_up_url",
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
    Reason.TOKEN_INVALID: "The bearer token is not valid; get one from the identity provider.",
    Reason.TOKEN_EXPIRED: "The bearer token has expired; get a new one from the identity provider.",
    Reason.IDENTITY_PROVIDER_UNAVAILABLE: (
        "The identity provider's signing keys are unavailable, so the token cannot be checked."
        " Try again shortly."
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
    Reason.SCOPE_REQUIRED: "Your token lacks a scope this route requires.",
    Reason.CONDITION_FAILED: "The request does not meet this route's conditions.",
    Reason.RECOVERY_BLOCKED_BY_RISK: (
        "Account recovery is not available from this device or network right now."
    ),
}


def with_step_up_url(decision: Decision, url: str, *, browser: bool) -> Decision:
    """Point a step-up denial at the step-up page: 302 for a browser, else the URL in the body."""
    if browser:
        return replace(
            decision, redirect_to=url, client_headers=(*decision.client_headers, ("location", url))
        )
    return replace(decision, details=(*decision.details, ("step_up_url", url)))


def step_up(
    policy: PolicySet,
    route: Route | None,
    identity: ClientIdentity | None,
    user: User | None,
    max_age: int,
    *,
    risk: RiskAssessment | None = None,
    trace: tuple[Step, ...] = (),
) -> Decision:
    # RFC 9470: lets standard OAuth clients see that a fresher authentication is needed.
    challenge = f'Bearer error="insufficient_user_authentication", max_age={max_age}'
    if user is not None and user.step_up_acr_values:
        challenge += f', acr_values="{user.step_up_acr_values}"'
    return Decision(
        allowed=False,
        reason=Reason.MFA_STEP_UP_REQUIRED,
        message=f"A second-factor verification within the last {max_age} seconds is required.",
        route=route.name if route else "",
        identity=identity,
        client_headers=(
            ("x-admitd-reason", Reason.MFA_STEP_UP_REQUIRED.value),
            ("www-authenticate", challenge),
            *_risk_headers(risk),
        ),
        policy_version=policy.version,
        user=user,
        mfa_checked=True,
        step_up_max_age=max_age,
        details=(("max_age", max_age), *_risk_details(risk)),
        risk=risk,
        trace=trace,
        status_override=_step_up_status(user),
    )


def _step_up_status(user: User | None) -> int:
    """401 for a credential configured for strict RFC 9470 clients; else the reason's 428."""
    return 401 if user is not None and user.step_up_status == 401 else 0


def allow(
    ctx: RequestContext,
    policy: PolicySet,
    route: Route | None,
    identity: ClientIdentity | None,
    reason: Reason,
    *,
    facts: Facts,
    user: User | None = None,
    mfa_checked: bool = False,
    risk: RiskAssessment | None = None,
    shadow_reason: Reason | None = None,
    log_detail: str = "",
    trace: tuple[Step, ...] = (),
) -> Decision:
    """An admission, with the headers the upstream gets (identity, user, route's own, risk)
    and without the identity source's own credentials (`facts`) or client-forged headers."""
    route_name = route.name if route else "(unmatched)"
    upstream = [(ROUTE_HEADER, route_name)]
    if identity is not None:
        upstream.append((PRINCIPAL_HEADER, identity.principal))
        if identity.fingerprint_sha256:  # a mesh identity may come without its certificate
            upstream.append((FINGERPRINT_HEADER, identity.fingerprint_sha256))
    if user is not None:
        upstream += _user_headers(user)
    if route is not None:
        upstream += route.upstream_headers
    upstream += _risk_headers(risk)
    setting = {name for name, _ in upstream}
    removing = list(_headers_to_remove(ctx, setting))
    _strip_credentials(ctx, facts, setting, upstream, removing)
    return Decision(
        allowed=True,
        reason=reason,
        route=route_name,
        identity=identity,
        upstream_headers=tuple(upstream),
        headers_to_remove=tuple(removing),
        policy_version=policy.version,
        user=user,
        mfa_checked=mfa_checked,
        risk=risk,
        client_ok_headers=_risk_headers(risk),
        shadow_reason=shadow_reason,
        log_detail=log_detail,
        trace=trace,
    )


def _strip_credentials(
    ctx: RequestContext,
    facts: Facts,
    setting: set[str],
    upstream: list[tuple[str, str]],
    removing: list[str],
) -> None:
    """Keep the identity source's own cookie and bearer token from the upstream.

    It gets `x-admitd-session` (an id) instead: a token it logged or leaked would be a
    live session for anyone. Other cookies and other bearer tokens stay. A header the
    route sets itself is overwritten anyway, so it is left to that.
    """
    if "authorization" not in setting and facts.credential_bearer:
        removing.append("authorization")
    if "cookie" in setting or not facts.credential_cookie:
        return
    others = _cookies_without(ctx.header("cookie"), facts.credential_cookie)
    if others:  # rewritten, not removed and re-added: Envoy's order of the two is not ours
        upstream.append(("cookie", others))
    elif others is not None:
        removing.append("cookie")


def _risk_headers(risk: RiskAssessment | None) -> Headers:
    """Risk level and signals, for the upstream and the client (allowed or not)."""
    if risk is None:
        return ()
    return (("x-admitd-risk-level", risk.level.value), ("x-admitd-risk-signals", risk.signal_names))


def _risk_details(risk: RiskAssessment | None) -> tuple[tuple[str, str | int], ...]:
    if risk is None:
        return ()
    return (("risk_level", risk.level.value), ("risk_signals", risk.signal_names))


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
    user: User | None = None,
    mfa_checked: bool = False,
    risk: RiskAssessment | None = None,
    log_detail: str = "",
    trace: tuple[Step, ...] = (),
) -> Decision:
    message = _DENIAL_MESSAGES.get(reason) or _certificate_message(reason, detail)
    return Decision(
        allowed=False,
        reason=reason,
        message=message,
        route=route.name if route else "",
        identity=identity,
        client_headers=(
            ("x-admitd-reason", reason.value),
            *_token_challenge(reason),
            *_risk_headers(risk),
        ),
        policy_version=policy.version,
        user=user,
        mfa_checked=mfa_checked,
        details=_risk_details(risk),
        risk=risk,
        log_detail=log_detail,
        trace=trace,
    )


def _token_challenge(reason: Reason) -> Headers:
    # RFC 6750 §3.1: a refused bearer token is answered with an `invalid_token` challenge.
    if reason in (Reason.TOKEN_INVALID, Reason.TOKEN_EXPIRED):
        return (("www-authenticate", 'Bearer error="invalid_token"'),)
    return ()


def _certificate_message(reason: Reason, detail: str) -> str:
    if reason is Reason.REQUEST_MALFORMED:
        return f"The request is malformed: {detail}."
    return f"The client certificate was not accepted ({reason.value})" + (
        f": {detail}." if detail else "."
    )
