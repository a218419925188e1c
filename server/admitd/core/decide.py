"""The decision: pure, synchronous, deterministic. No I/O, no protobuf, no clock."""

from __future__ import annotations

from admitd.certs.forwarding import FORWARDED_CERT_HEADERS
from admitd.certs.identity import ClientIdentity
from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason, reason_from_certificate_problem
from admitd.core.facts import Facts
from admitd.policy.model import PolicySet, Route

__all__ = ["ADMITD_HEADER_PREFIX", "decide"]

ADMITD_HEADER_PREFIX = "x-admitd-"
PRINCIPAL_HEADER = "x-admitd-principal"
FINGERPRINT_HEADER = "x-admitd-cert-sha256"
ROUTE_HEADER = "x-admitd-route"
# Every forwarded-certificate header name is its own prefix; one startswith() per header.
_POLICED_PREFIXES = (ADMITD_HEADER_PREFIX, *FORWARDED_CERT_HEADERS)

_DENIAL_MESSAGES: dict[Reason, str] = {
    Reason.CERTIFICATE_MISSING: "This route requires a client certificate.",
    Reason.IDENTITY_NOT_ALLOWED: "The client certificate's identity is not allowed on this route.",
    Reason.HTTPS_REQUIRED: "This route is only served over HTTPS.",
    Reason.NO_MATCHING_ROUTE: "No policy admits this request.",
}


def decide(ctx: RequestContext, policy: PolicySet, facts: Facts) -> Decision:
    """Allow or deny one request, given the policy and the facts gathered about it."""
    if ctx.malformed:
        return _deny(ctx, policy, Reason.REQUEST_MALFORMED, detail="; ".join(ctx.malformed))
    if policy.require_https and _forwarded_proto(ctx) != "https":
        return _deny(ctx, policy, Reason.HTTPS_REQUIRED)
    route = policy.route_for(ctx)
    if route is None and policy.unmatched == "deny":
        return _deny(ctx, policy, Reason.NO_MATCHING_ROUTE)
    certificate = facts.certificate
    if route is not None and route.public:
        return _allow(ctx, policy, route, certificate.identity, Reason.PUBLIC_ROUTE)
    if certificate.identity is None:
        assert certificate.problem is not None  # one of identity/problem is always set
        reason = reason_from_certificate_problem(certificate.problem)
        return _deny(ctx, policy, reason, detail=certificate.detail, route=route)
    if route is not None and not route.identities.admits(certificate.identity):
        return _deny(
            ctx, policy, Reason.IDENTITY_NOT_ALLOWED, route=route, identity=certificate.identity
        )
    return _allow(ctx, policy, route, certificate.identity, Reason.ALLOWED)


def _forwarded_proto(ctx: RequestContext) -> str:
    # Envoy overwrites x-forwarded-proto at the edge (use_remote_address), so a
    # client cannot forge it; fall back to the scheme Envoy reports.
    return (ctx.header("x-forwarded-proto") or ctx.scheme).lower()


def _allow(
    ctx: RequestContext,
    policy: PolicySet,
    route: Route | None,
    identity: ClientIdentity | None,
    reason: Reason,
) -> Decision:
    route_name = route.name if route else "(unmatched)"
    upstream = [(ROUTE_HEADER, route_name)]
    if identity is not None:
        upstream += [
            (PRINCIPAL_HEADER, identity.principal),
            (FINGERPRINT_HEADER, identity.fingerprint_sha256),
        ]
    return Decision(
        allowed=True,
        reason=reason,
        route=route_name,
        identity=identity,
        upstream_headers=tuple(upstream),
        headers_to_remove=_headers_to_remove(ctx, {name for name, _ in upstream}),
        policy_version=policy.version,
    )


def _headers_to_remove(ctx: RequestContext, setting: set[str]) -> tuple[str, ...]:
    """Client-sent admitd headers we do not overwrite, and forwarded-certificate headers.

    Headers we set are overwritten instead of removed, so the outcome does not
    depend on the order in which Envoy applies removals and additions.
    """
    return tuple(
        name for name in ctx.headers if name.startswith(_POLICED_PREFIXES) and name not in setting
    )


def _deny(
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
