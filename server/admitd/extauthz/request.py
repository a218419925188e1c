"""CheckRequest -> RequestContext, refusing what a well-behaved Envoy never sends."""

from __future__ import annotations

import re
from types import MappingProxyType

from envoy.service.auth.v3.attribute_context_pb2 import AttributeContext
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from admitd.core.context import NO_CALLER, Caller, RequestContext, host_from_authority

__all__ = ["MAX_HEADER_BYTES", "context_from_check_request", "host_problems", "request_problems"]

MAX_HEADER_BYTES = 96 * 1024  # Envoy's default max_request_headers_kb is 60
MAX_HEADERS = 200
# Field values may hold VCHAR, SP and HTAB only (RFC 9110 §5.5); Envoy rejects
# CR/LF/NUL itself, but admitd is also reachable by other gRPC callers.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A segment that is `.` or `..` once `;params` are cut off: Tomcat, Jetty and Spring
# resolve `/public/..;/admin` to `/admin` (and some decode %3B first).
# `%25` before one of those (`%252e`) is the same, encoded twice: an upstream or framework
# that decodes again would see a dot segment or slash that no route matched.
_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|;|%3b|$)|%2e|%2f|%5c|%25(2e|2f|5c|3b)|\\", re.IGNORECASE)


def context_from_check_request(request: CheckRequest, caller: Caller = NO_CALLER) -> RequestContext:
    """A typed view of the request; problems go into `malformed`, never raise.
    `caller` is the Envoy that sent it (from gRPC, not from the request)."""
    attributes = request.attributes
    http = attributes.request.http
    source = attributes.source
    headers = _headers(http)
    method, path = http.method, http.path
    extensions = attributes.context_extensions
    return RequestContext(
        method=method,
        scheme=http.scheme,
        host=http.host,
        path=path,
        headers=MappingProxyType(headers),
        source_address=source.address.socket_address.address,
        peer_certificate=source.certificate,
        envoy_principal=source.principal,
        request_id=headers.get("x-request-id") or http.id,
        context_extensions=MappingProxyType(dict(extensions) if len(extensions) else {}),
        malformed=request_problems(method, path, headers) + host_problems(http.host),
        caller=caller,
    )


def _headers(http: AttributeContext.HttpRequest) -> dict[str, str]:
    headers: dict[str, str] = dict(http.headers)
    if not headers and len(http.header_map.headers):
        # `encode_raw_headers: true` sends header_map instead of the string map.
        for entry in http.header_map.headers:
            value = entry.raw_value.decode("utf-8", "replace") or entry.value
            if entry.key in headers:
                # RFC 9113 §8.2.3: split cookie fields are rejoined with "; ", others with ",".
                value = headers[entry.key] + ("; " if entry.key == "cookie" else ",") + value
            headers[entry.key] = value
    return headers


def host_problems(authority: str) -> tuple[str, ...]:
    # Routes compare the normalised host (RequestContext.host_name): an authority that
    # names no host could otherwise skip every host-restricted route.
    if host_from_authority(authority):  # cached: RequestContext asks again, for free
        return ()
    return ("Host is not a host name (RFC 1123 name, IPv4 or [IPv6], optional :port)",)


def request_problems(method: str, path: str, headers: dict[str, str]) -> tuple[str, ...]:
    if not method or not path:
        return ("no HTTP request attributes",)
    problems: list[str] = []
    if len(headers) > MAX_HEADERS:
        problems.append(f"more than {MAX_HEADERS} headers")
    # One scan over all names and values: a regex search per header costs more
    # than the rest of the request conversion.
    joined = " ".join([*headers, *headers.values()])
    # Fast path in C for the usual all-ASCII, tab-free case; the regex decides otherwise.
    clean = joined.isascii() and joined.isprintable()
    if not clean and _CONTROL.search(joined):
        problems.append("a header contains control characters")
    size = len(joined)
    if size > MAX_HEADER_BYTES:
        problems.append("headers too large")
    if not path.startswith("/") and path != "*":
        problems.append("path must start with '/'")
    elif _DOT_SEGMENT.search(path.split("?", 1)[0]):
        problems.append("path is not normalized (dot segments or encoded slashes)")
    if "#" in path:
        # No request target carries a fragment (RFC 9112 3.2); Envoy rejects or strips
        # one unless its unsafe runtime guard keeps it, and then routes and an upstream
        # may each read another path: refused rather than guessed.
        problems.append("path carries a fragment ('#')")
    return tuple(problems)
