"""The HTTP ext_authz listener in-process over real sockets: bytes in, HTTP answers out.

A real Engine (test PKI and policy) behind admitd.httpauthz; a raw asyncio client
stands in for Envoy, so malformed input can be sent that Envoy itself never would.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from unittest.mock import Mock

import pytest
from prometheus_client import CollectorRegistry

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.identity import CertificateFacts
from admitd.engine import Engine
from admitd.httpauthz.connection import Limits
from admitd.httpauthz.listener import HttpAuthzListener, start_http_authz
from admitd.httpauthz.service import HttpCheckService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for
from tests.unit.test_check_service import StalledEngine, eventually


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, str]:
        error: dict[str, str] = json.loads(self.body)["error"]
        return error


@dataclass
class Served:
    listener: HttpAuthzListener
    port: int
    lines: list[str] = field(default_factory=list)
    audited: list[Decision] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    decisions: DecisionLog | None = None

    def logged(self) -> list[dict[str, object]]:
        assert self.decisions is not None
        self.decisions.flush()
        return [json.loads(line) for line in "".join(self.lines).splitlines()]

    def count(self, outcome: str, reason: str) -> float | None:
        labels = {"outcome": outcome, "reason": reason}
        return self.registry.get_sample_value("admitd_decisions_total", labels)


async def serve(engine: Engine, limits: Limits | None = None, address: str = "") -> Served:
    served = Served(cast(HttpAuthzListener, None), 0)
    served.decisions = DecisionLog(served.lines.append)
    service = HttpCheckService(
        engine,
        Metrics(served.registry),
        served.decisions,
        lambda _ctx, decision: served.audited.append(decision),
    )
    if not address:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        served.port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        address = f"127.0.0.1:{served.port}"
    served.listener = await start_http_authz(address, service, limits)
    return served


@pytest.fixture
async def served(pki: PkiSet, policy_dir: Path) -> AsyncIterator[Served]:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl])
    result = await serve(engine)
    yield result
    await result.listener.close(0.5)


def request(
    path: str = "/api/items", *, cert: str = "", method: str = "GET", **headers: str
) -> bytes:
    """Bytes as Envoy's http_service sends them (envoy/edge-http.yaml)."""
    fields = {
        "host": "api.test",
        "x-forwarded-proto": "https",
        "x-request-id": "req-1",
        "x-admitd-source-address": "203.0.113.7",
        "x-admitd-check-timeout-ms": "500",
        "content-length": "0",
        **({"x-forwarded-client-cert": f'Hash=ab;Cert="{cert}";URI=x'} if cert else {}),
        **headers,
    }
    lines = [f"{method} /check{path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode()[:-4].split("\r\n")
    headers = {n.lower(): v for n, _, v in (line.partition(": ") for line in lines)}
    length = 0 if head_only else int(headers["content-length"])
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def exchange(port: int, *requests: bytes, heads: int = 0) -> tuple[list[Answer], bool]:
    """Send `requests` in one write (pipelined if several); read one answer each.
    Also says whether the server then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(requests))
        answers = [await read_answer(reader, head_only=i < heads) for i in range(len(requests))]
        closed = await asyncio.wait_for(reader.read(1), 0.2) == b"" if answers else False
    except TimeoutError:
        closed = False
    finally:
        writer.close()
    return answers, closed


async def raw(port: int, data: bytes) -> bytes:
    """Whatever the server writes back before it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_an_allowed_request_gets_200_with_upstream_headers(
    served: Served, pki: PkiSet
) -> None:
    forged = {"x-admitd-principal": "forged", "x-admitd-extra": "forged"}
    (answer,), closed = await exchange(served.port, request(cert=url_pem(pki.alice), **forged))
    assert (answer.status, answer.body, closed) == (200, b"", False)
    assert answer.headers["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert answer.headers["x-admitd-route"] == "api"
    # Overwritten where admitd sets it, removed where it does not (as over gRPC).
    assert answer.headers["x-envoy-auth-headers-to-remove"] == (
        "x-admitd-source-address, x-admitd-check-timeout-ms, x-admitd-extra"
    )
    assert served.count("allow", "allowed") == 1


async def test_a_missing_certificate_is_495_with_the_json_body(served: Served) -> None:
    (answer,), _ = await exchange(served.port, request())
    assert answer.status == 495 and answer.headers["x-admitd-reason"] == "missing"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["code"] == "client_certificate_required"
    (line,) = served.logged()
    assert (line["reason"], line["path"], line["request_id"]) == ("missing", "/api/items", "req-1")
    assert [d.reason.value for d in served.audited] == ["missing"]


@pytest.mark.parametrize(
    ("xfcc", "detail"),
    [
        pytest.param('Hash=1;Cert="open', "malformed (unbalanced quotes)", id="unbalanced"),
        pytest.param('Hash=1;Cert="a",Hash=2;Cert="b"', "2 elements, not one", id="two"),
        pytest.param("Hash=1;URI=spiffe://x", "has no Cert", id="no-cert"),
    ],
)
async def test_an_xfcc_our_edge_would_not_write_is_refused_495(
    served: Served, xfcc: str, detail: str
) -> None:
    # On the public route too: whoever wrote it is not the edge admitd trusts.
    for path in ("/api/items", "/healthz"):
        (answer,), _ = await exchange(
            served.port, request(path, **{"x-forwarded-client-cert": xfcc})
        )
        assert answer.status == 495 and answer.headers["x-admitd-reason"] == "malformed"
        assert detail in answer.json()["message"]
    assert served.count("deny", "malformed") == 2


async def test_a_forwarded_certificate_that_is_not_pem_is_malformed(served: Served) -> None:
    (answer,), _ = await exchange(served.port, request(cert="-----BEGIN%20CERTIFICATE-----%0AAA"))
    assert answer.status == 495 and answer.headers["x-admitd-reason"] == "malformed"


async def test_keep_alive_answers_request_after_request(served: Served, pki: PkiSet) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    try:
        for path in ("/api/a", "/api/b", "/nowhere"):
            writer.write(request(path, cert=url_pem(pki.alice)))
            answer = await read_answer(reader)
            assert answer.status == (200 if path.startswith("/api") else 403)
    finally:
        writer.close()
    assert served.listener.open_connections <= 1


async def test_pipelined_requests_are_answered_in_order(served: Served, pki: PkiSet) -> None:
    alice = url_pem(pki.alice)
    answers, closed = await exchange(
        served.port, request("/api/one", cert=alice), request("/nowhere"), request("/healthz")
    )
    assert [a.status for a in answers] == [200, 403, 200]
    assert answers[0].headers["x-admitd-route"] == "api" and not closed


async def test_pipelining_beyond_the_limit_answers_what_is_owed_then_closes(
    pki: PkiSet, policy_dir: Path
) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    small = await serve(engine, Limits(max_pipelined=2))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", small.port)
        writer.write(request("/healthz") * 5)
        statuses = [(await read_answer(reader)).status for _ in range(2)]
        assert statuses == [200, 200]
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the rest is not answered
        writer.close()
    finally:
        await small.listener.close(0.5)


async def test_head_gets_headers_only(served: Served) -> None:
    (answer,), closed = await exchange(served.port, request(method="HEAD"), heads=1)
    assert answer.status == 495 and int(answer.headers["content-length"]) > 0
    assert not closed  # no body followed: the connection is still in step


async def test_connection_close_from_envoy_is_honoured(served: Served) -> None:
    (answer,), closed = await exchange(served.port, request("/healthz", connection="close"))
    assert answer.status == 200 and answer.headers["connection"] == "close" and closed


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 4, 400, id="tls-hello"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, id="bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, id="obs-fold"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            id="length-and-chunked",
        ),
        pytest.param(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="connect"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            400,
            id="upgrade",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
            431,
            id="oversized-headers",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(300)) + b"\r\n",
            431,
            id="too-many-headers",
        ),
        pytest.param(
            b"POST /check/healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n"
            + b"a" * 2_000_000,
            413,
            id="oversized-body",
        ),
    ],
)
async def test_malformed_http_gets_4xx_and_a_closed_connection_never_a_crash(
    served: Served, pki: PkiSet, data: bytes, status: int
) -> None:
    reply = await raw(served.port, data)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:80]
    assert b"connection: close" in reply and b"x-admitd-reason: request_malformed" in reply
    assert served.logged() == []  # not a Check: nothing to decide, log or audit
    (after,), _ = await exchange(served.port, request(cert=url_pem(pki.alice)))
    assert after.status == 200  # the server is unharmed


async def test_a_request_that_never_completes_is_dropped(pki: PkiSet, policy_dir: Path) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    quick = await serve(engine, Limits(header_timeout=0.1))
    try:
        assert await raw(quick.port, b"GET /check/healthz HTTP/1.1\r\nHost: a\r\n") == b""
    finally:
        await quick.listener.close(0.5)


async def test_a_body_is_read_and_ignored(served: Served) -> None:
    data = request("/healthz", method="POST").replace(b"content-length: 0", b"content-length: 5")
    (answer,), closed = await exchange(served.port, data + b"hello")
    assert answer.status == 200 and not closed


async def test_a_request_outside_the_check_prefix_is_a_recorded_400(served: Served) -> None:
    (answer,), _ = await exchange(
        served.port, request().replace(b"GET /check/api/items", b"GET /api/items")
    )
    assert answer.status == 400 and "path_prefix" in answer.json()["message"]
    assert served.count("deny", "request_malformed") == 1


async def test_an_internal_failure_fails_closed_without_a_traceback(pki: PkiSet) -> None:
    broken = Mock(spec=Engine)
    broken.check.side_effect = RuntimeError("boom: secret-ish internals")
    failing = await serve(broken)
    try:
        (answer,), _ = await exchange(failing.port, request(cert=url_pem(pki.alice)))
        assert answer.status == 503 and b"boom" not in answer.body
        assert answer.json()["code"] == "authorization_unavailable"
    finally:
        await failing.listener.close(0.5)


async def test_non_ascii_route_headers_reach_envoy_as_utf8(pki: PkiSet, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - {name: api, match: {path_prefix: /api/}, identities: any,"
        ' upstream_headers: {x-tenant: "café"}}\n'
    )
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    tenant = await serve(engine)
    try:
        (answer,), _ = await exchange(tenant.port, request(cert=url_pem(pki.alice)))
        assert answer.status == 200 and answer.headers["x-tenant"] == "café"
    finally:
        await tenant.listener.close(0.5)


class InjectingEngine:
    """An engine admitting with a header value that would split the HTTP response."""

    policy = None

    async def check(
        self, ctx: RequestContext, *, deadline: float | None = None
    ) -> tuple[Decision, Facts]:
        forged = (("x-admitd-principal", "alice\r\nx-admitd-roles: admin"),)
        decision = Decision(allowed=True, reason=Reason.ALLOWED, upstream_headers=forged)
        return decision, Facts(CertificateFacts.not_examined(), now=0.0)


async def test_a_header_http_cannot_carry_fails_closed_never_splits(served: Served) -> None:
    injecting = await serve(cast(Engine, InjectingEngine()))
    try:
        (answer,), _ = await exchange(injecting.port, request())
        assert answer.status == 503 and "x-admitd-roles" not in answer.headers
        assert injecting.count("deny", "authorization_unavailable") == 1
    finally:
        await injecting.listener.close(0.5)


async def test_envoy_giving_up_cancels_the_check_which_is_still_recorded(pki: PkiSet) -> None:
    engine = StalledEngine()
    stalled = await serve(cast(Engine, engine))
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", stalled.port)
        writer.write(request("/api/late", cert=url_pem(pki.alice)))
        await asyncio.wait_for(engine.entered.wait(), 5)
        writer.close()  # what Envoy does when its ext_authz timeout passes
        await eventually(lambda: stalled.count("deny", "authorization_unavailable") == 1)
        (line,) = stalled.logged()
        assert line["path"] == "/api/late" and "cancelled" in str(line["detail"])
        assert [d.reason.value for d in stalled.audited] == ["authorization_unavailable"]
    finally:
        await stalled.listener.close(0.5)


async def test_close_finishes_checks_in_flight_then_closes_idle_and_stuck_ones(
    pki: PkiSet, policy_dir: Path
) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    gentle = await serve(engine)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", gentle.port)
    idle_writer.write(request("/healthz"))
    assert (await read_answer(idle_reader)).status == 200
    await gentle.listener.close(1.0)
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # idle: closed at once
    idle_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", gentle.port)


async def test_a_stuck_check_is_cut_after_the_grace_period(pki: PkiSet) -> None:
    engine = StalledEngine()
    stuck = await serve(cast(Engine, engine))
    reader, writer = await asyncio.open_connection("127.0.0.1", stuck.port)
    writer.write(request("/api/stuck", cert=url_pem(pki.alice)))
    await asyncio.wait_for(engine.entered.wait(), 5)
    await stuck.listener.close(0.2)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await eventually(lambda: stuck.count("deny", "authorization_unavailable") == 1)


async def test_a_unix_socket_is_for_owner_and_group_only(
    pki: PkiSet, policy_dir: Path, tmp_path: Path
) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    path = tmp_path / "authz.sock"
    on_unix = await serve(engine, address=f"unix://{path}")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(request("/healthz"))
        assert (await read_answer(reader)).status == 200
        writer.close()
    finally:
        await on_unix.listener.close(0.5)
    assert not path.exists()
