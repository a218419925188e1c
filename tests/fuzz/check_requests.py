"""Mutated CheckRequests: a valid request (alice's certificate, a certificate-only route)
changed by one to three mutations drawn from a `random.Random`.

One generator serves the in-process hypothesis tests (which hand it a hypothesis-controlled
Random, so failures shrink), the gRPC fuzz through a running server and the atheris target.
Every mutation keeps the message valid protobuf (strings are valid UTF-8; raw header values
are bytes and may be anything).
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote, unquote

from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from tests.fuzz.oracle import der_of_forwarded_pem

__all__ = ["RequestSpec", "mutated", "random_text"]

_TRICKY_PATHS = (
    "/api/items", "/api/", "/api", "/admin/", "/admin/users", "/healthz", "/healthz/",
    "/healthz?x=1", "/api/../admin/x", "/api/%2e%2e/admin/x", "/api/%2E%2E/admin", "/api/..;/admin/",
    "/api/.;/x", "/api%2fadmin", "/api/%252e%252e/admin", "/api\\..\\admin", "//admin/x", "/./admin/",
    "/API/items", "/Admin/x", "/api/;jsessionid=1", "/api/x?../../admin", "*", "", "admin/x",
    "/api/\u00e9", "/api/\u2025/admin", "/api/%00", "/api/x#frag", "/api/" + "a" * 5000,
    "/admin/%2e%2e/api/x", "/api/./x", "/api/x/..", "/%61pi/x", "/api/%ff%fe",
)  # fmt: skip
_METHODS = (
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "get",
    "Get",
    "",
    "CONNECT",
    "OPTIONS",
    "G\u00c9T",
    "PATCH",
)
_HOSTS = (
    "api.test", "API.TEST", "api.test:8443", "api.test.", "[::1]", "[::1]:443", "127.0.0.1",
    "0x7f.0.0.1", "", "api.test:99999", "api_test", "b\u00fccher.example", "xn--", "a" * 300,
    "api.test:", "[::1", "api.test:8443:1", ":443", "..", "\u0130.test",
)  # fmt: skip
_PROTOS = ("https", "http", "HTTPS", "", "https,http", "ws", "https ", "h\u0074tps")
_HEADER_NAMES = (
    "x-forwarded-proto", "authorization", "cookie", "x-request-id", "x-forwarded-client-cert",
    "client-cert", "client-cert-chain", "x-client-cert", "accept", "user-agent", "x-device-id",
    ":path", ":authority", "host", "x-admitd-principal", "x-admitd-user", "X-Forwarded-Proto",
    "content-length", "traceparent",
)  # fmt: skip
_ALPHABETS = (
    "abcdefghijklmnopqrstuvwxyz0123456789-._~",
    "/%.;?#=&+:@\\ \t",
    "\x00\x01\x07\x0a\x0d\x1f\x7f",
    "\u00e9\u2025\u202e\u0130\ufeff\U0001f600\u00a0",
)


@dataclass
class RequestSpec:
    """What a CheckRequest carries; `raw_headers` is Envoy's `encode_raw_headers` form."""

    method: str = "GET"
    path: str = "/api/items"
    host: str = "api.test"
    scheme: str = "https"
    headers: dict[str, str] = field(default_factory=dict)
    raw_headers: list[tuple[str, bytes]] = field(default_factory=list)
    certificate: str = ""
    source_address: str = "203.0.113.7"
    context_extensions: dict[str, str] = field(default_factory=dict)
    request_id: str = "1234"
    mutations: tuple[str, ...] = ()

    @classmethod
    def golden(cls, certificate: str, path: str = "/api/items") -> RequestSpec:
        headers = {
            ":authority": "api.test",
            ":method": "GET",
            ":path": path,
            "x-forwarded-proto": "https",
            "x-request-id": "req-1",
        }
        return cls(path=path, headers=headers, certificate=certificate)

    def header_pairs(self) -> list[tuple[str, str]]:
        """The headers as admitd reads them (the map, or else the raw list, decoded)."""
        if self.headers:
            return list(self.headers.items())
        return [(k, v.decode("utf-8", "replace")) for k, v in self.raw_headers]

    def to_proto(self) -> CheckRequest:
        request = CheckRequest()
        attributes = request.attributes
        attributes.source.address.socket_address.address = self.source_address
        attributes.source.address.socket_address.port_value = 51234
        attributes.source.certificate = self.certificate
        attributes.destination.address.socket_address.address = "127.0.0.1"
        http = attributes.request.http
        http.id, http.method, http.path = self.request_id, self.method, self.path
        http.host, http.scheme, http.protocol = self.host, self.scheme, "HTTP/1.1"
        http.headers.update(self.headers)
        for key, value in self.raw_headers:
            http.header_map.headers.add(key=key, raw_value=value)
        attributes.context_extensions.update(self.context_extensions)
        return request


def random_text(rnd: random.Random, max_size: int = 40) -> str:
    """Text from a mix of URL-ish, control and non-ASCII characters (never surrogates)."""
    alphabet = "".join(rnd.sample(_ALPHABETS, rnd.randint(1, len(_ALPHABETS))))
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, max_size)))


def mutated(
    golden: RequestSpec,
    rnd: random.Random,
    *,
    other_certificates: Sequence[str],
    count: int | None = None,
) -> RequestSpec:
    """`golden` with 1-3 mutations (or `count`); `mutations` names them, for a failure report."""
    spec = replace(
        golden,
        headers=dict(golden.headers),
        raw_headers=list(golden.raw_headers),
        context_extensions=dict(golden.context_extensions),
    )
    names: list[str] = []
    for _ in range(count if count is not None else rnd.randint(1, 3)):
        name, mutation = rnd.choice(_MUTATIONS)
        mutation(spec, rnd, other_certificates)
        names.append(name)
    spec.mutations = tuple(names)
    return spec


Mutation = Callable[[RequestSpec, random.Random, Sequence[str]], None]


def _flip_cert_char(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    text = spec.certificate
    if text:
        at = rnd.randrange(len(text))
        spec.certificate = text[:at] + chr(rnd.randrange(0x20, 0x7F)) + text[at + 1 :]


def _flip_cert_der(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    """A bit flip in the DER, re-encoded as a well-formed URL-encoded PEM."""
    der = der_of_forwarded_pem(spec.certificate)
    if der:
        at = rnd.randrange(len(der))
        flipped = der[:at] + bytes([der[at] ^ (1 << rnd.randrange(8))]) + der[at + 1 :]
        spec.certificate = _url_pem(flipped)


def _truncate_cert(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    if spec.certificate:
        spec.certificate = spec.certificate[: rnd.randrange(len(spec.certificate))]


def _truncate_der(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    der = der_of_forwarded_pem(spec.certificate)
    if der:
        spec.certificate = _url_pem(der[: rnd.randrange(len(der))])


def _der_junk_after(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    der = der_of_forwarded_pem(spec.certificate)
    if der:
        spec.certificate = _url_pem(der + rnd.randbytes(rnd.randint(1, 16)))


def _other_cert(spec: RequestSpec, rnd: random.Random, others: Sequence[str]) -> None:
    spec.certificate = rnd.choice(others)


def _append_cert(spec: RequestSpec, rnd: random.Random, others: Sequence[str]) -> None:
    spec.certificate += rnd.choice(others)


def _prepend_cert(spec: RequestSpec, rnd: random.Random, others: Sequence[str]) -> None:
    spec.certificate = rnd.choice(others) + spec.certificate


def _many_certs(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    spec.certificate *= rnd.randint(2, 12)


def _recode_cert(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    """Same certificate, other spelling: raw PEM, doubly encoded, lower-case escapes, CRLF."""
    pem = unquote(spec.certificate)
    spec.certificate = rnd.choice(
        (
            pem,
            quote(spec.certificate, safe=""),
            spec.certificate.lower(),
            quote(pem.replace("\n", "\r\n"), safe=""),
            quote(pem.replace("\n", ""), safe=""),
            quote(" " + pem + "\x00", safe=""),
        )
    )


def _junk_cert(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    spec.certificate = rnd.choice(
        (
            random_text(rnd, 200),
            "-----BEGIN CERTIFICATE-----\n"
            + random_text(rnd, 200)
            + "\n-----END CERTIFICATE-----\n",
            quote("-----BEGIN CERTIFICATE-----\n", safe="") + "%" * rnd.randint(1, 5),
            "-----BEGIN CERTIFICATE-----" * rnd.randint(1, 60),
            _url_pem(rnd.randbytes(rnd.randint(0, 600))),
        )
    )


def _path(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    choice = rnd.random()
    if choice < 0.6:
        spec.path = rnd.choice(_TRICKY_PATHS)
    elif choice < 0.8:
        spec.path = rnd.choice(("/api/", "/admin/", "/")) + random_text(rnd)
    else:
        at = rnd.randrange(len(spec.path) + 1)
        spec.path = spec.path[:at] + random_text(rnd, 6) + spec.path[at:]
    if ":path" in spec.headers:
        spec.headers[":path"] = spec.path


def _method(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    spec.method = rnd.choice(_METHODS) if rnd.random() < 0.8 else random_text(rnd, 8)


def _host(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    spec.host = rnd.choice(_HOSTS) if rnd.random() < 0.8 else random_text(rnd, 30)


def _proto(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    if rnd.random() < 0.2:
        spec.headers.pop("x-forwarded-proto", None)
        spec.scheme = rnd.choice(_PROTOS)
    else:
        spec.headers["x-forwarded-proto"] = rnd.choice(_PROTOS)


def _random_headers(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    for _count in range(rnd.randint(1, 8)):
        name = rnd.choice(_HEADER_NAMES) if rnd.random() < 0.6 else random_text(rnd, 12)
        spec.headers[name] = random_text(rnd, 60)


def _oversized_header(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    name = rnd.choice(_HEADER_NAMES)
    spec.headers[name] = rnd.choice("ab%;,=") * rnd.choice((8_000, 70_000, 100_000))


def _many_headers(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    for index in range(rnd.choice((150, 199, 201, 400))):
        spec.headers[f"x-fuzz-{index}"] = "v"


def _raw_headers(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    """`encode_raw_headers`: the map empty, a list of raw (possibly invalid UTF-8) values,
    names repeated."""
    pairs = [(k, v.encode()) for k, v in spec.headers.items()]
    for _count in range(rnd.randint(1, 6)):
        name = rnd.choice(_HEADER_NAMES)
        value = rnd.choice((rnd.randbytes(rnd.randint(0, 40)), b"\xff\xfe", b"https", b"a\x00b"))
        pairs.insert(rnd.randrange(len(pairs) + 1), (name, value))
    spec.headers = {}
    spec.raw_headers = pairs


def _context_extensions(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    value = rnd.choice(("health", "admin", "api", "nope", "", random_text(rnd, 10)))
    key = "admitd_route" if rnd.random() < 0.8 else random_text(rnd, 10)
    spec.context_extensions[key] = value


def _drop(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    field_name = rnd.choice(("method", "path", "host", "scheme", "certificate", "source_address"))
    setattr(spec, field_name, "")
    if field_name == "path":
        spec.headers.pop(":path", None)


def _source(spec: RequestSpec, rnd: random.Random, _: Sequence[str]) -> None:
    spec.source_address = rnd.choice(
        ("127.0.0.1", "::1", "not an ip", "10.0.0.1", random_text(rnd))
    )


def _url_pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii")
    return quote(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n", safe="")


_MUTATIONS: tuple[tuple[str, Mutation], ...] = (
    ("flip-cert-char", _flip_cert_char),
    ("flip-cert-der", _flip_cert_der),
    ("flip-cert-der", _flip_cert_der),
    ("truncate-cert", _truncate_cert),
    ("truncate-der", _truncate_der),
    ("der-junk-after", _der_junk_after),
    ("other-cert", _other_cert),
    ("append-cert", _append_cert),
    ("prepend-cert", _prepend_cert),
    ("many-certs", _many_certs),
    ("recode-cert", _recode_cert),
    ("junk-cert", _junk_cert),
    ("path", _path),
    ("path", _path),
    ("method", _method),
    ("host", _host),
    ("proto", _proto),
    ("random-headers", _random_headers),
    ("oversized-header", _oversized_header),
    ("many-headers", _many_headers),
    ("raw-headers", _raw_headers),
    ("context-extensions", _context_extensions),
    ("drop-field", _drop),
    ("source", _source),
)
