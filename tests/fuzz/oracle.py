"""An independent oracle for a certificate-only policy: which requests may ever be admitted.

It shares no code with admitd. It reads the certificate with the standard library only
(percent-decoding, the first PEM block, base64) and compares DER bytes with the known-good
certificates; it reads the path the way a lax upstream might (decoded, `;params` cut,
`\\` as `/`, dot segments resolved) and admits a path only when both that reading and the
raw path fall under the same route. `may_allow` is an upper bound: admitd may deny more
(it also refuses odd hosts, control characters, duplicate `x-forwarded-proto` ...), but an
admitted request outside the bound is a wrong allow.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["CERT_ONLY_POLICY", "CertOnlyOracle", "RouteRule", "der_of_forwarded_pem"]

ALICE = "spiffe://test.example/user/alice"
BOB = "spiffe://test.example/user/bob"

CERT_ONLY_POLICY = """\
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: admin
    match: {path_prefix: /admin/, methods: [GET, POST]}
    identities:
      spiffe: ["spiffe://test.example/user/alice"]
  - name: api
    match: {path_prefix: /api/}
    identities:
      spiffe: ["spiffe://test.example/user/*"]
"""


@dataclass(frozen=True, slots=True)
class RouteRule:
    """The oracle's own reading of one route of CERT_ONLY_POLICY."""

    name: str
    exact: str = ""
    prefix: str = ""
    methods: frozenset[str] = frozenset()
    identities: frozenset[str] | None = None  # None: public

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return path == self.exact if self.exact else path.startswith(self.prefix)


ROUTES = (
    RouteRule("health", exact="/healthz"),
    RouteRule(
        "admin", prefix="/admin/", methods=frozenset({"GET", "POST"}), identities=frozenset({ALICE})
    ),
    RouteRule("api", prefix="/api/", identities=frozenset({ALICE, BOB})),
)

_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
# ASCII whitespace (SP, HTAB, LF, VT, FF, CR) inside the base64 is no part of the DER:
# PEM readers skip it, so a spelling that differs only there denotes the same certificate.
_WHITESPACE = re.compile(r"[ \t\n\x0b\x0c\r]")


def der_of_forwarded_pem(text: str) -> bytes | None:
    """The DER of the first PEM certificate in URL-encoded `text`, or None."""
    pem = unquote(text)
    start = pem.find(_BEGIN)
    end = pem.find(_END, start + len(_BEGIN)) if start >= 0 else -1
    if start < 0 or end < 0:
        return None
    body = _WHITESPACE.sub("", pem[start + len(_BEGIN) : end])
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def upstream_path(path: str) -> str:
    """The path as a lax upstream could read it: decoded up to three times, `\\` as `/`,
    `;params` cut off every segment, dot segments resolved, repeated slashes merged."""
    for _ in range(3):
        path = unquote(path)
    path = path.replace("\\", "/")
    segments = [segment.split(";", 1)[0] for segment in path.split("/")]
    joined = "/".join(segments)
    normal = posixpath.normpath(joined) if joined else joined
    if joined.endswith("/") and not normal.endswith("/"):
        normal += "/"
    return normal.replace("//", "/")


class CertOnlyOracle:
    """`may_allow`: could a correct admitd admit this request under CERT_ONLY_POLICY?"""

    def __init__(self, known: Mapping[bytes, str]) -> None:
        """`known`: DER of each valid client certificate -> its SPIFFE ID."""
        self.known = dict(known)

    def may_allow(
        self,
        *,
        method: str,
        path: str,
        scheme: str,
        headers: Sequence[tuple[str, str]],
        certificate: str,
        route_name: str = "",
    ) -> bool:
        if not _is_https(headers, scheme):
            return False
        route = _route_named(route_name) if route_name else _route_for(method, path)
        if route is None:
            return False
        if route.identities is None:
            return True
        der = der_of_forwarded_pem(certificate) if certificate else None
        if der is None:
            return False
        return self.known.get(der) in route.identities


def _is_https(headers: Sequence[tuple[str, str]], scheme: str) -> bool:
    # Envoy sends lower-case header names and sets x-forwarded-proto itself at the edge;
    # an empty value claims nothing, so the scheme Envoy reports decides.
    protos = [value for name, value in headers if name == "x-forwarded-proto" and value]
    if not protos:
        return scheme.lower() == "https"
    return all(value.lower() == "https" for value in protos)


def _route_named(name: str) -> RouteRule | None:
    return next((route for route in ROUTES if route.name == name), None)


def _route_for(method: str, path: str) -> RouteRule | None:
    raw = path.split("?", 1)[0]
    upstream = upstream_path(raw)
    for route in ROUTES:
        if route.matches(method, raw):
            # The first route admitd would pick; the upstream must read the path the same way.
            return route if route.matches(method, upstream) else None
    return None
