"""What admitd's HTTP ext_authz listener and the Envoy config that calls it agree on.

Envoy's `http_service` sends the original request's method, `path_prefix` + path and the
allowed headers, and reads admitd's answer from the response: 200 admits, with the
headers `allowed_upstream_headers` lets through to the upstream; anything else is the
denial the client sees (status, `allowed_client_headers`, body). Header names here are
used by both sides, so they live in one place (admitd.devstack.envoy_http_config).
"""

from __future__ import annotations

__all__ = [
    "CHECK_PATH_PREFIX",
    "CLIENT_DENIAL_EXACT",
    "CLIENT_OK_HEADERS",
    "HEADERS_TO_REMOVE_HEADER",
    "METADATA_HEADERS",
    "NOT_SENT_TO_ADMITD",
    "POLICED_PREFIX",
    "SOURCE_ADDRESS_HEADER",
    "TIMEOUT_HEADER",
    "UPSTREAM_EXACT",
    "XFCC_HEADER",
]

# http_service.path_prefix: admitd answers only paths under it, so an Envoy pointed at
# the wrong port (or one without the prefix) is refused loudly instead of misrouted.
CHECK_PATH_PREFIX = "/check"
# Set by the edge's HTTP connection manager (forward_client_cert_details: SANITIZE_SET):
# the TLS peer's certificate. Trusted only because nothing but that Envoy can reach
# admitd's http_listen (docs/http-authz.md, "Trust model").
XFCC_HEADER = "x-forwarded-client-cert"
# authorization_request.headers_to_add (they overwrite a client's header of that name):
# the downstream address Envoy saw, and Envoy's timeout for this Check.
SOURCE_ADDRESS_HEADER = "x-admitd-source-address"
TIMEOUT_HEADER = "x-admitd-check-timeout-ms"
# Envoy removes the listed request headers before the upstream sees them (a 200 only).
HEADERS_TO_REMOVE_HEADER = "x-envoy-auth-headers-to-remove"
# Headers admitd may set on the upstream request: its own, plus the identity source's
# cookie (rewritten without admitd's session) and a route's `authorization`.
POLICED_PREFIX = "x-admitd-"
UPSTREAM_EXACT = ("cookie", "authorization")
# Response headers for the client on an admitted request (allowed_client_headers_on_success)
# and the ones Envoy turns into dynamic metadata (dynamic_metadata_from_headers, the
# filter's namespace envoy.filters.http.ext_authz), on admits and denials alike.
CLIENT_OK_HEADERS = ("x-admitd-risk-level", "x-admitd-risk-signals")
METADATA_HEADERS = CLIENT_OK_HEADERS
# Denial headers for the client besides x-admitd-* (Envoy adds status, content-length,
# www-authenticate and location itself): the JSON body's and the HTML page's.
CLIENT_DENIAL_EXACT = (
    "content-type",
    "cache-control",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "strict-transport-security",
)
# Request headers never copied into the authorization request (disallowed_headers): they
# describe the client's connection or body framing, not the request admitd judges.
NOT_SENT_TO_ADMITD = (
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "expect",
)
