"""The request as admitd sees it: an immutable, protobuf-free view of a CheckRequest."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

__all__ = ["NO_CALLER", "Caller", "RequestContext", "host_from_authority", "host_name"]

# RFC 1123 §2.1 labels (letters, digits, inner hyphens; at most 63), at most 253 in all.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# WHATWG URL "ends in a number": such a name is an IPv4 address to a browser (octal and
# hex included), so it must be a plain dotted quad or nothing.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PORT = re.compile(r"[0-9]{0,5}")  # RFC 3986 §3.2.3: digits, possibly none
_MAX_AUTHORITY = 253 + len(".:65535")


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked admitd this question: the gRPC peer of the Check call (an Envoy), not the
    client of the request. `transport` is "unix" (admitd's Unix socket), "tcp" or "tls";
    `address` the peer's IP for tcp/tls; `principals` the SAN URIs and DNS names (never
    the common name) of the certificate it presented on `tls_listen` (verified by gRPC
    against `client_ca`). Only read when a config section names callers."""

    transport: str = ""
    address: str = ""
    principals: frozenset[str] = frozenset()


NO_CALLER = Caller()


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One HTTP request that Envoy asks about.

    `headers` keys are lower-case (HTTP/2 and Envoy's CheckRequest already use
    lower case). `peer_certificate` is the URL-encoded PEM Envoy saw on the TLS
    connection (`include_peer_certificate: true`), or "" when there was none.
    `envoy_principal` is what Envoy reports as the peer's principal; it is NOT
    trusted on its own, because the edge listener accepts untrusted chains so
    that admitd can explain the failure (see envoy/edge.yaml).
    `context_extensions` are Envoy's per-route ext_authz settings. `caller` is the Envoy
    that asked (see Caller).
    """

    method: str
    scheme: str
    host: str
    path: str
    headers: Mapping[str, str] = field(default_factory=_empty)
    source_address: str = ""
    peer_certificate: str = ""
    envoy_principal: str = ""
    request_id: str = ""
    context_extensions: Mapping[str, str] = field(default_factory=_empty)
    malformed: tuple[str, ...] = field(default=())
    caller: Caller = NO_CALLER

    path_only: str = field(init=False, default="")
    host_name: str = field(init=False, default="")  # see host_from_authority; "" if invalid
    path_has_parameters: bool = field(init=False, default=False)  # `;` (RFC 3986 §3.3)

    def __post_init__(self) -> None:
        # The path without query or fragment: matched and logged several times per
        # request, so it is cut once here.
        cut = len(self.path)
        for sep in ("?", "#"):
            index = self.path.find(sep)
            if 0 <= index < cut:
                cut = index
        path = self.path[:cut]
        object.__setattr__(self, "path_only", path)
        object.__setattr__(self, "host_name", host_from_authority(self.host))
        # Tomcat, Jetty and Spring cut `;params` off each segment (some after decoding %3B),
        # so the upstream may resolve a path other than the one the routes matched.
        parameters = ";" in path or "%3b" in path or "%3B" in path
        object.__setattr__(self, "path_has_parameters", parameters)

    def header(self, name: str) -> str:
        """Value of a header by lower-case name, or ""."""
        return self.headers.get(name, "")


def host_from_authority(authority: str) -> str:
    """The host an HTTP authority names, as routes compare it; "" when it names none.

    Lower case, port cut off, one trailing dot dropped (an absolute name, RFC 1034 §3.1),
    non-ASCII names in IDNA (2003, Python's codec) ASCII form, IPv6 in brackets and
    compressed. What is not an RFC 1123 name, a dotted-quad IPv4 or a bracketed IPv6
    address is "", so a lax spelling can never skip a host-restricted route.
    """
    if len(authority) > _MAX_AUTHORITY:  # also keeps the cache small
        return ""
    return _host_from_authority(authority)


@lru_cache(maxsize=4096)  # a few hosts carry nearly all traffic
def _host_from_authority(authority: str) -> str:
    end = authority.find("]") + 1 if authority.startswith("[") else authority.find(":")
    if end <= 0:
        return host_name(authority)  # no port (or an unclosed bracket, refused there)
    host, port = authority[:end], authority[end:]
    if port and not (port[0] == ":" and _PORT.fullmatch(port, 1) and int(port[1:] or 0) <= 65535):
        return ""
    return host_name(host)


def host_name(host: str) -> str:
    """A host without port normalised as in host_from_authority; "" when it is not one."""
    if host.startswith("["):
        return _ipv6_literal(host)
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    host = host.lower()
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return ""
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(host))  # strict: no octal, hex or short forms
        except ValueError:
            return ""
    return host


def _ipv6_literal(host: str) -> str:
    inner = host[1:-1]
    if not host.endswith("]") or "%" in inner:  # no zone IDs: they name a local interface
        return ""
    try:
        return f"[{ipaddress.IPv6Address(inner).compressed}]"
    except ValueError:
        return ""
