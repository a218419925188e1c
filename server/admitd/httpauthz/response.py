"""Decision -> the HTTP answer Envoy's `http_service` reads: 200 admits, anything else denies.

An admission is an empty 200 whose headers Envoy copies onto the upstream request
(`allowed_upstream_headers`), with `x-envoy-auth-headers-to-remove` naming the request
headers it must drop and the risk headers for the client. A denial is the status,
headers and body the client sees, as the gRPC adapter's DeniedHttpResponse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from admitd.core.decision import Decision
from admitd.extauthz.denial_page import DenialPages
from admitd.extauthz.response import denial_body
from admitd.httpauthz.wire import HEADERS_TO_REMOVE_HEADER

__all__ = ["Reply", "UnsafeHeader", "reply_from_decision", "reply_from_page", "static_reply"]

_DENIAL_HEADERS = (("content-type", "application/json"), ("cache-control", "no-store"))
# RFC 9110 §5.5: a field value is VCHAR, SP, HTAB and obs-text; a CR or LF in one
# would end the header early and let its rest be read as a header of its own.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # RFC 9110 §5.6.2, lower case
_CACHE_LIMIT = 4096


class UnsafeHeader(ValueError):
    """A header name or value that cannot be written into an HTTP/1.1 message."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP/1.1 response: `head` ends with the blank line, `body` follows it except
    for HEAD requests. `with_close()` is the same answer ending the connection."""

    head: bytes
    body: bytes = b""

    def with_close(self) -> Reply:
        return Reply(self.head[:-2] + b"connection: close\r\n\r\n", self.body)


_cache: dict[tuple[object, ...], Reply] = {}


def reply_from_decision(decision: Decision) -> Reply:
    """The answer for a decision; identical decisions share one (most traffic repeats a
    few route and principal pairs, and building the bytes costs more than looking up).
    Raises UnsafeHeader for a header that HTTP/1.1 cannot carry."""
    key = (
        decision.allowed,
        decision.status,
        decision.reason,
        decision.message,
        decision.upstream_headers,
        decision.client_headers,
        decision.headers_to_remove,
        decision.details,
        decision.client_ok_headers,
    )
    reply = _cache.get(key)
    if reply is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        reply = _cache[key] = _allowed(decision) if decision.allowed else _denied(decision)
    return reply


def reply_from_page(pages: DenialPages, decision: Decision, request_id: str) -> Reply:
    """A browser's denial as admitd's HTML page (extauthz.denial_page), same headers."""
    denied = pages.response(decision, request_id).denied_response
    headers = tuple((h.header.key, h.header.value) for h in denied.headers)
    return static_reply(denied.status.code, headers, denied.body.encode())


def _allowed(decision: Decision) -> Reply:
    headers = list(decision.upstream_headers)
    if decision.headers_to_remove:
        headers.append((HEADERS_TO_REMOVE_HEADER, ", ".join(decision.headers_to_remove)))
    # The risk headers go both ways and are written once: Envoy matches each response
    # header against the upstream and the client lists on its own.
    headers += [h for h in decision.client_ok_headers if h not in decision.upstream_headers]
    return static_reply(200, tuple(headers))


def _denied(decision: Decision) -> Reply:
    if decision.status == 200:  # Envoy admits on exactly 200, whatever the body says
        raise UnsafeHeader(f"a denial ({decision.reason.value}) must not answer 200")
    body = denial_body(decision).encode()
    return static_reply(decision.status, (*_DENIAL_HEADERS, *decision.client_headers), body)


def static_reply(status: int, headers: tuple[tuple[str, str], ...], body: bytes = b"") -> Reply:
    """A response with a content-length; raises UnsafeHeader rather than write a bad field."""
    lines = [f"HTTP/1.1 {status} {_phrase(status)}"]
    for name, value in headers:
        _check(name, value)
        lines.append(f"{name}: {value}")
    lines.append(f"content-length: {len(body)}")
    return Reply(("\r\n".join(lines) + "\r\n\r\n").encode(), body)


def _check(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise UnsafeHeader(f"header name {name[:40]!r} is not a lower-case token")
    # Fast path in C for the usual printable ASCII; the regex decides otherwise.
    if not (value.isascii() and value.isprintable()) and _CONTROL.search(value):
        raise UnsafeHeader(f"header {name} has a control character in its value")


def _phrase(status: int) -> str:
    # Envoy reads the status code only; 495 (nginx's "SSL Certificate Error") has no
    # standard phrase.
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
