"""Decision -> the HTTP answer Envoy's http_service reads (admitd.httpauthz.response)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from admitd.core.decision import Decision, Reason
from admitd.extauthz.denial_page import DenialPages
from admitd.extauthz.response import denial_body
from admitd.httpauthz.response import (
    Reply,
    UnsafeHeader,
    reply_from_decision,
    reply_from_page,
    static_reply,
)


def parsed(reply: Reply) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers in order, body) as Envoy's HTTP/1.1 codec would read them."""
    head = reply.head.decode()
    assert head.endswith("\r\n\r\n")
    status_line, *lines = head[:-4].split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = [(n, v) for n, _, v in (line.partition(": ") for line in lines)]
    length = dict(headers)["content-length"]
    assert int(length) == len(reply.body)
    return int(status), headers, reply.body


ALLOWED = Decision(
    allowed=True,
    reason=Reason.ALLOWED,
    route="api",
    upstream_headers=(
        ("x-admitd-route", "api"),
        ("x-admitd-principal", "spiffe://test.example/user/alice"),
        ("x-admitd-risk-level", "low"),
    ),
    headers_to_remove=("x-admitd-forged", "x-client-cert"),
    client_ok_headers=(("x-admitd-risk-level", "low"),),
)


def test_an_admission_is_an_empty_200_carrying_the_upstream_headers() -> None:
    status, headers, body = parsed(reply_from_decision(ALLOWED))
    assert (status, body) == (200, b"")
    assert headers == [
        ("x-admitd-route", "api"),
        ("x-admitd-principal", "spiffe://test.example/user/alice"),
        ("x-admitd-risk-level", "low"),  # once: upstream and client lists both match it
        ("x-envoy-auth-headers-to-remove", "x-admitd-forged, x-client-cert"),
        ("content-length", "0"),
    ]


def test_a_client_only_header_on_an_admission_is_written_too() -> None:
    decision = replace(ALLOWED, client_ok_headers=(("x-admitd-risk-level", "high"),))
    _, headers, _ = parsed(reply_from_decision(decision))
    assert headers.count(("x-admitd-risk-level", "high")) == 1


def test_a_denial_carries_status_headers_and_the_grpc_adapters_body() -> None:
    decision = Decision(
        allowed=False,
        reason=Reason.CERTIFICATE_MISSING,
        message="This route requires a client certificate.",
        client_headers=(("x-admitd-reason", "missing"),),
    )
    reply = reply_from_decision(decision)
    status, headers, body = parsed(reply)
    assert status == 495 and reply.head.startswith(b"HTTP/1.1 495 Unknown\r\n")
    assert ("content-type", "application/json") in headers
    assert ("cache-control", "no-store") in headers
    assert ("x-admitd-reason", "missing") in headers
    assert body == denial_body(decision).encode()
    assert json.loads(body)["error"]["code"] == "client_certificate_required"


def test_a_browser_step_up_is_a_302_with_its_location() -> None:
    decision = Decision(
        allowed=False,
        reason=Reason.MFA_STEP_UP_REQUIRED,
        redirect_to="/.admitd/step-up?r=x",
        client_headers=(("location", "/.admitd/step-up?r=x"),),
    )
    status, headers, _ = parsed(reply_from_decision(decision))
    assert status == 302 and ("location", "/.admitd/step-up?r=x") in headers


def test_a_browser_denial_is_admitds_html_page() -> None:
    decision = Decision(
        allowed=False,
        reason=Reason.CERTIFICATE_MISSING,
        client_headers=(("x-admitd-reason", "missing"), ("content-type", "application/json")),
        page=True,
    )
    status, headers, body = parsed(reply_from_page(DenialPages(), decision, "req-7"))
    names = dict(headers)
    assert status == 495 and names["content-type"] == "text/html; charset=utf-8"
    assert names["x-admitd-reason"] == "missing" and "content-security-policy" in names
    assert b"Certificate required" in body and b"req-7" in body


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("x-admitd-principal", "a\r\nx-admitd-user: admin", id="crlf-in-value"),
        pytest.param("x-admitd-principal", "a\nb", id="lf-in-value"),
        pytest.param("x-admitd-principal", "a\x00b", id="nul-in-value"),
        pytest.param("x-tenant\r\nx", "a", id="crlf-in-name"),
        pytest.param("X-Tenant", "a", id="upper-case-name"),
    ],
)
def test_a_header_http_cannot_carry_is_refused_not_written(name: str, value: str) -> None:
    decision = replace(ALLOWED, upstream_headers=((name, value),))
    with pytest.raises(UnsafeHeader):
        reply_from_decision(decision)


def test_non_ascii_values_are_written_as_utf8() -> None:
    decision = replace(ALLOWED, upstream_headers=(("x-admitd-user", "zoë"),), headers_to_remove=())
    assert "x-admitd-user: zoë\r\n".encode() in reply_from_decision(decision).head


def test_a_denial_never_answers_200() -> None:
    with pytest.raises(UnsafeHeader):
        reply_from_decision(Decision(allowed=False, reason=Reason.ALLOWED))


def test_identical_decisions_share_one_reply() -> None:
    assert reply_from_decision(ALLOWED) is reply_from_decision(replace(ALLOWED))


def test_with_close_adds_the_header_before_the_blank_line() -> None:
    reply = static_reply(400, (("x-admitd-reason", "request_malformed"),)).with_close()
    status, headers, _ = parsed(reply)
    assert status == 400 and headers[-1] == ("connection", "close")
