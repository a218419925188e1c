"""The gRPC Check service end to end in-process: CheckRequest in, CheckResponse out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, cast
from unittest.mock import Mock

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from prometheus_client import CollectorRegistry

from admitd.core.context import RequestContext
from admitd.core.decision import Decision
from admitd.engine import Engine
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import Session
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for


def golden_request(cert: str = "", path: str = "/api/items", **headers: str) -> CheckRequest:
    """Shaped like what Envoy 1.40 sends with include_peer_certificate: true."""
    request = CheckRequest()
    attributes = request.attributes
    attributes.source.address.socket_address.address = "203.0.113.7"
    attributes.source.address.socket_address.port_value = 51234
    attributes.source.certificate = cert
    attributes.destination.address.socket_address.address = "127.0.0.1"
    http = attributes.request.http
    http.id, http.method, http.path, http.host, http.scheme, http.protocol = (
        "1234",
        "GET",
        path,
        "api.test",
        "https",
        "HTTP/1.1",
    )
    http.headers.update(
        {
            ":authority": "api.test",
            ":method": "GET",
            ":path": path,
            "x-forwarded-proto": "https",
            "x-request-id": "req-1",
            **headers,
        }
    )
    return request


@pytest.fixture
def service(pki: PkiSet, policy_dir: Path) -> tuple[AuthorizationService, Metrics]:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl])
    metrics = Metrics(CollectorRegistry())
    return AuthorizationService(engine, metrics, DecisionLog()), metrics


async def check(service: AuthorizationService, request: CheckRequest) -> CheckResponse:
    return await service.Check(request, Mock())


async def test_allow_response(service: tuple[AuthorizationService, Metrics], pki: PkiSet) -> None:
    response = await check(
        service[0], golden_request(url_pem(pki.alice), **{"x-admitd-principal": "forged"})
    )
    assert response.status.code == 0 and response.HasField("ok_response")
    headers = {h.header.key: h.header.value for h in response.ok_response.headers}
    assert headers["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert all(
        h.append_action == h.OVERWRITE_IF_EXISTS_OR_ADD for h in response.ok_response.headers
    )
    assert service[1].decisions.labels("allow", "allowed")._value.get() == 1


async def test_missing_certificate_is_495_json(
    service: tuple[AuthorizationService, Metrics],
) -> None:
    response = await check(service[0], golden_request())
    denied = response.denied_response
    assert response.status.code == 7 and denied.status.code == 495
    assert json.loads(denied.body) == {
        "error": {
            "code": "client_certificate_required",
            "reason": "missing",
            "message": "This route requires a client certificate.",
        }
    }
    assert {h.header.key: h.header.value for h in denied.headers}[
        "content-type"
    ] == "application/json"
    assert service[1].security_events.labels("missing", "deny")._value.get() == 1


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(CheckRequest(), "request_malformed", id="empty-request"),
        pytest.param(
            golden_request(**{"x-bad": "a\x01b"}), "request_malformed", id="control-characters"
        ),
        pytest.param(
            golden_request(path="/api/../admin/x"), "request_malformed", id="dot-segments"
        ),
        pytest.param(
            golden_request(path="/api/%2e%2e/admin"), "request_malformed", id="encoded-dots"
        ),
        pytest.param(
            golden_request(**{"x-big": "a" * 100_000}), "request_malformed", id="oversized-headers"
        ),
        pytest.param(
            golden_request("-----BEGIN%20CERTIFICATE-----%0AAAAA"), "malformed", id="malformed-pem"
        ),
    ],
)
async def test_bad_input_gets_specific_reason(
    service: tuple[AuthorizationService, Metrics], request_: CheckRequest, reason: str
) -> None:
    response = await check(service[0], request_)
    assert not response.HasField("ok_response")
    body = json.loads(response.denied_response.body)["error"]
    assert body.get("reason", body["code"]) == reason


async def test_internal_failure_fails_closed_without_traceback(pki: PkiSet) -> None:
    broken = Mock(spec=Engine)
    broken.check.side_effect = RuntimeError("boom: secret-ish internals")
    service = AuthorizationService(broken, Metrics(CollectorRegistry()), DecisionLog())
    response = await check(service, golden_request(url_pem(pki.alice)))
    assert response.denied_response.status.code == 503
    assert "boom" not in response.denied_response.body
    assert json.loads(response.denied_response.body)["error"]["code"] == "authorization_unavailable"


async def test_decision_log_line_has_no_certificate_or_query(pki: PkiSet, policy_dir: Path) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    written: list[str] = []
    decisions = DecisionLog(written.append)
    service = AuthorizationService(engine, Metrics(CollectorRegistry()), decisions)
    await check(service, golden_request(url_pem(pki.alice), path="/api/items?token=s3cret"))
    assert written == []  # batched until flushed
    decisions.flush()
    (line,) = "".join(written).splitlines()
    fields = json.loads(line)
    assert fields["path"] == "/api/items" and fields["reason"] == "allowed"
    assert fields["principal"] == "spiffe://test.example/user/alice"
    assert fields["cert_sha256"] == pki.alice.cert.fingerprint(hashes.SHA256()).hex()
    assert "s3cret" not in line and "BEGIN" not in line


class StalledEngine:
    """An engine whose check never finishes by itself, like one waiting on a stuck Redis."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def check(self, ctx: RequestContext, *, deadline: float | None = None) -> NoReturn:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable: nothing sets the event")


class Recorded:
    """A service around a stalled engine, with what it logged, counted and audited."""

    def __init__(self) -> None:
        self.engine = StalledEngine()
        self.lines: list[str] = []
        self.decisions = DecisionLog(self.lines.append)
        self.registry = CollectorRegistry()
        self.audited: list[Decision] = []
        self.service = AuthorizationService(
            cast(Engine, self.engine),
            Metrics(self.registry),
            self.decisions,
            lambda _ctx, decision: self.audited.append(decision),
        )

    def logged(self) -> list[dict[str, object]]:
        self.decisions.flush()
        return [json.loads(line) for line in "".join(self.lines).splitlines()]

    def denials(self, reason: str) -> float | None:
        labels = {"outcome": "deny", "reason": reason}
        return self.registry.get_sample_value("admitd_decisions_total", labels)


def assert_recorded_as_cancelled(recorded: Recorded, path: str) -> None:
    (fields,) = recorded.logged()
    assert (fields["decision"], fields["reason"], fields["path"]) == (
        "deny",
        "authorization_unavailable",
        path,
    )
    assert "cancelled" in str(fields["detail"])
    assert recorded.denials("authorization_unavailable") == 1
    assert [decision.reason.value for decision in recorded.audited] == ["authorization_unavailable"]


async def test_a_check_cancelled_mid_flight_is_still_logged_and_counted(pki: PkiSet) -> None:
    recorded = Recorded()
    request = golden_request(url_pem(pki.alice), path="/api/slow")
    task = asyncio.create_task(check(recorded.service, request))
    await asyncio.wait_for(recorded.engine.entered.wait(), 5)
    assert recorded.logged() == []  # nothing is recorded before the Check ends
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_recorded_as_cancelled(recorded, "/api/slow")


async def test_envoy_deadline_cancels_the_check_which_is_still_logged(pki: PkiSet) -> None:
    """Over real gRPC: a client deadline (Envoy's ext_authz timeout) cancels the handler."""
    recorded = Recorded()
    server = grpc.aio.server()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(recorded.service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            request = golden_request(url_pem(pki.alice), path="/api/late")
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Check(request, timeout=0.2)
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: recorded.denials("authorization_unavailable") == 1)
    finally:
        await server.stop(None)
    assert_recorded_as_cancelled(recorded, "/api/late")


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """The server notices the deadline on its own schedule, after the client gave up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class CountingStore(MemorySessionStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def get(self, ref: SessionRef) -> Session | None:
        self.lookups += 1
        return await super().get(ref)


@pytest.mark.parametrize(("remaining", "lookups"), [(0.0, 0), (5.0, 1)], ids=["passed", "ahead"])
async def test_no_session_lookup_starts_after_envoys_deadline(
    pki: PkiSet, tmp_path: Path, remaining: float, lookups: int
) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - {name: app, match: {path_prefix: /app/}, identities: any, session: required}\n"
    )
    store = CountingStore()
    engine, _ = engine_for(pki.trust_bundle, tmp_path, store=store)
    lines: list[str] = []
    service = AuthorizationService(
        engine, Metrics(CollectorRegistry()), DecisionLog(lines.append, batch=1)
    )
    token, _ = new_session_token("late")
    context = Mock()
    context.time_remaining.return_value = remaining
    request = golden_request(url_pem(pki.alice), "/app/x", authorization=f"Bearer {token}")
    response = await service.Check(request, context)
    assert store.lookups == lookups
    if not lookups:
        assert response.denied_response.status.code == 503
        assert "deadline passed before the session lookup" in lines[-1]
