"""Envoy's HTTP authorization request -> RequestContext (admitd.httpauthz.request)."""

from __future__ import annotations

import time

import pytest

from admitd.core.context import Caller
from admitd.extauthz.request import context_from_check_request
from admitd.httpauthz.request import (
    HttpRequest,
    check_input_from_http_request,
    headers_from_fields,
    peer_from_xfcc,
)
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.test_check_service import golden_request


def xfcc(cert: str, uri: str = "spiffe://test.example/user/alice") -> str:
    """What Envoy's SANITIZE_SET with set_current_client_cert_details {cert, uri} writes."""
    return f'Hash=3f2a;Cert="{cert}";URI={uri}'


def envoy_request(path: str = "/api/items", cert: str = "", **extra: str) -> HttpRequest:
    """Shaped like Envoy 1.40's http_service request (envoy/edge-http.yaml's settings)."""
    headers = {
        "host": "api.test",
        "x-forwarded-proto": "https",
        "x-request-id": "req-1",
        "x-admitd-source-address": "203.0.113.7",
        "x-admitd-check-timeout-ms": "500",
        **({"x-forwarded-client-cert": xfcc(cert)} if cert else {}),
        **extra,
    }
    return HttpRequest("GET", "/check" + path, headers)


def test_envoys_request_becomes_the_context_a_check_request_would(pki: PkiSet) -> None:
    cert = url_pem(pki.alice)
    checked = check_input_from_http_request(envoy_request(cert=cert))
    ctx = checked.ctx
    assert (ctx.method, ctx.scheme, ctx.host, ctx.path) == (
        "GET",
        "https",
        "api.test",
        "/api/items",
    )
    assert (ctx.source_address, ctx.request_id) == ("203.0.113.7", "req-1")
    assert ctx.peer_certificate == cert  # URL-encoded PEM, as include_peer_certificate gives
    assert ctx.envoy_principal == "spiffe://test.example/user/alice"
    assert ctx.malformed == () and checked.certificate_problem == ""
    grpc = context_from_check_request(golden_request(cert))
    assert (grpc.method, grpc.scheme, grpc.host_name, grpc.path) == (
        ctx.method,
        ctx.scheme,
        ctx.host_name,
        ctx.path,
    )


def test_without_a_certificate_there_is_no_peer_and_no_problem() -> None:
    checked = check_input_from_http_request(envoy_request())
    assert checked.ctx.peer_certificate == "" and checked.certificate_problem == ""


def test_the_deadline_is_envoys_timeout_from_arrival() -> None:
    before = time.monotonic()
    deadline = check_input_from_http_request(envoy_request()).deadline
    assert deadline is not None and before + 0.5 <= deadline <= time.monotonic() + 0.5


@pytest.mark.parametrize("value", ["", "soon", "-5", "99999999999", "\u00b2"])  # "²".isdigit()
def test_an_unusable_timeout_means_no_deadline(value: str) -> None:
    request = envoy_request(**{"x-admitd-check-timeout-ms": value})
    assert check_input_from_http_request(request).deadline is None


def test_a_path_outside_the_check_prefix_is_malformed() -> None:
    request = HttpRequest("GET", "/api/items", {"host": "api.test"})
    ctx = check_input_from_http_request(request).ctx
    assert any("path_prefix" in problem for problem in ctx.malformed)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param("/api/../admin/x", {}, id="dot-segments"),
        pytest.param("/api/%2e%2e/admin", {}, id="encoded-dots"),
        pytest.param("/api/x", {"x-bad": "a\x01b"}, id="control-characters"),
        pytest.param("/api/x", {"x-big": "a" * 100_000}, id="oversized-headers"),
        pytest.param("/api/x", {"host": "exa mple.test"}, id="not-a-host"),
    ],
)
def test_refuses_what_the_grpc_adapter_refuses(path: str, extra: dict[str, str]) -> None:
    http = check_input_from_http_request(envoy_request(path, **extra)).ctx
    grpc_extra = {k: v for k, v in extra.items() if k != "host"}
    grpc_request = golden_request(path=path, **grpc_extra)
    if "host" in extra:
        grpc_request.attributes.request.http.host = extra["host"]
    assert http.malformed
    assert http.malformed == context_from_check_request(grpc_request).malformed


def test_repeated_fields_are_joined_as_envoy_joins_them() -> None:
    headers, repeated = headers_from_fields(
        [(b"Cookie", b"a=1"), (b"cookie", b"b=2"), (b"Accept", b"text/html"), (b"accept", b"*/*")]
    )
    assert headers == {"cookie": "a=1; b=2", "accept": "text/html,*/*"}
    assert repeated == ()


@pytest.mark.parametrize(
    "name",
    ["host", "x-forwarded-client-cert", "x-admitd-source-address", "x-admitd-check-timeout-ms"],
)
def test_a_header_our_edge_sets_once_is_malformed_when_repeated(name: str) -> None:
    headers, repeated = headers_from_fields([(name.encode(), b"a"), (name.encode(), b"b")])
    request = HttpRequest("GET", "/check/api/x", {"host": "api.test", **headers}, repeated)
    ctx = check_input_from_http_request(request).ctx
    assert f"{name} sent more than once" in ctx.malformed


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param('Hash=1;Cert="unterminated', "malformed (unbalanced quotes)", id="quotes"),
        pytest.param("Hash=1;Bogus=2", "malformed (unknown or malformed pair", id="unknown-key"),
        pytest.param(
            'Hash=1;Cert="a",Hash=2;Cert="b"', "2 elements, not one", id="appended-by-a-client"
        ),
        pytest.param("Hash=1;URI=spiffe://x", "has no Cert", id="no-cert"),
        pytest.param(" , ", "0 elements", id="empty"),
    ],
)
def test_an_xfcc_our_edge_would_not_write_is_a_certificate_problem(
    value: str, problem: str
) -> None:
    pem, uri, found = peer_from_xfcc(value)
    assert (pem, uri) == ("", "")
    assert problem in found and found.startswith("x-forwarded-client-cert")
    checked = check_input_from_http_request(envoy_request(**{"x-forwarded-client-cert": value}))
    assert checked.certificate_problem == found and checked.ctx.peer_certificate == ""


def test_the_caller_is_the_connection_not_the_request() -> None:
    request = HttpRequest("GET", "/check/api/x", {"host": "api.test"}, (), Caller("unix"))
    assert check_input_from_http_request(request).ctx.caller == Caller("unix")
