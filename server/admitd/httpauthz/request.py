"""Envoy's HTTP authorization request -> RequestContext, refusing what our Envoy never sends.

The request is the client's, as Envoy's `http_service` forwards it: its method, the
`path_prefix` + its path, and its headers (all of them, `allowed_headers`), plus what
the edge adds: `x-forwarded-proto`, the TLS peer's certificate in
`x-forwarded-client-cert` (SANITIZE_SET) and the source address (headers_to_add).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from admitd.certs.xfcc import XfccError, parse_xfcc
from admitd.core.context import NO_CALLER, Caller, RequestContext

# The gRPC adapter's checks, so both transports refuse exactly the same requests.
from admitd.extauthz.request import host_problems, request_problems
from admitd.httpauthz.wire import (
    CHECK_PATH_PREFIX,
    SOURCE_ADDRESS_HEADER,
    TIMEOUT_HEADER,
    XFCC_HEADER,
)

__all__ = [
    "CheckInput",
    "HttpRequest",
    "check_input_from_http_request",
    "headers_from_fields",
    "peer_from_xfcc",
]

# Headers Envoy sets once; two of them mean something other than our edge wrote them.
_SINGLE = frozenset({"host", XFCC_HEADER, SOURCE_ADDRESS_HEADER, TIMEOUT_HEADER})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request: `target` as sent (path_prefix + path), header names lower-case,
    repeated fields joined, `repeated` the single-valued ones that came twice."""

    method: str
    target: str
    headers: dict[str, str]
    repeated: tuple[str, ...] = ()
    caller: Caller = NO_CALLER


@dataclass(frozen=True, slots=True)
class CheckInput:
    """What a Check needs: the context, when Envoy stops waiting (time.monotonic()), and
    why the certificate Envoy forwarded cannot be read ("" when it can, or there is none)."""

    ctx: RequestContext
    deadline: float | None
    certificate_problem: str


def headers_from_fields(
    fields: Iterable[tuple[bytes, bytes]],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Header fields as a dict; a repeated field is joined as Envoy joins it for gRPC
    (RFC 9110 §5.3 with ",", cookies with "; ", RFC 9113 §8.2.3)."""
    headers: dict[str, str] = {}
    repeated: list[str] = []
    for raw_name, raw_value in fields:
        name = _NAMES.get(raw_name) or _name(raw_name)
        value = raw_value.decode("utf-8", "replace")
        if name in headers:
            if name in _SINGLE:
                repeated.append(name)
            value = headers[name] + ("; " if name == "cookie" else ",") + value
        headers[name] = value
    return headers, tuple(repeated)


# The same few header names arrive with every request: decoded once (bounded).
_NAMES: dict[bytes, str] = {}


def _name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_NAMES) < 1024:
        _NAMES[raw] = name
    return name


def check_input_from_http_request(request: HttpRequest) -> CheckInput:
    """A typed view of the request; problems go into `malformed`, never raise."""
    headers = request.headers
    path, path_problems = _path(request.target)
    pem, principal, certificate_problem = peer_from_xfcc(headers.get(XFCC_HEADER, ""))
    host = headers.get("host", "")
    problems = path_problems + tuple(f"{name} sent more than once" for name in request.repeated)
    ctx = RequestContext(
        method=request.method,
        # Envoy's gRPC CheckRequest reports x-forwarded-proto as the scheme too.
        scheme=headers.get("x-forwarded-proto", ""),
        host=host,
        path=path,
        headers=MappingProxyType(headers),
        source_address=headers.get(SOURCE_ADDRESS_HEADER, ""),
        peer_certificate=pem,
        envoy_principal=principal,
        request_id=headers.get("x-request-id", ""),
        malformed=problems + request_problems(request.method, path, headers) + host_problems(host),
        caller=request.caller,
    )
    return CheckInput(ctx, _deadline(headers.get(TIMEOUT_HEADER, "")), certificate_problem)


def _path(target: str) -> tuple[str, tuple[str, ...]]:
    if not target.startswith(CHECK_PATH_PREFIX):
        return target, (f"not an ext_authz request (Envoy's path_prefix is {CHECK_PATH_PREFIX})",)
    return target[len(CHECK_PATH_PREFIX) :], ()


def _deadline(timeout_ms: str) -> float | None:
    """Envoy's ext_authz timeout, from when the request arrived (its queueing unknown)."""
    if not (timeout_ms.isascii() and timeout_ms.isdigit()) or len(timeout_ms) > 7:  # not "²"
        return None
    return time.monotonic() + int(timeout_ms) / 1000


@lru_cache(maxsize=4096)  # one entry per client certificate; parsing XFCC is char by char
def peer_from_xfcc(value: str) -> tuple[str, str, str]:
    """(URL-encoded PEM leaf, URI SAN, problem) from the XFCC our edge set.

    With SANITIZE_SET Envoy writes one element describing the TLS peer, or no header when
    the client presented no certificate. Anything else is not what our edge sends: the
    forwarded certificate cannot be trusted, so the request is refused (never admitted
    as if it had none).
    """
    if not value:
        return "", "", ""
    try:
        elements = parse_xfcc(value)
    except XfccError as exc:
        return "", "", f"{XFCC_HEADER} is malformed ({exc})"
    if len(elements) != 1:
        return (
            "",
            "",
            (
                f"{XFCC_HEADER} has {len(elements)} elements, not one: the edge must set"
                " forward_client_cert_details: SANITIZE_SET"
            ),
        )
    element = elements[0]
    certificate = element.get("cert", "")
    if not certificate:
        return (
            "",
            "",
            (f"{XFCC_HEADER} has no Cert: the edge must set set_current_client_cert_details.cert"),
        )
    return certificate, element.get("uri", ""), ""
