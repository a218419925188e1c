"""The admin API verifies its caller like a Check: CRL, deny list, live reloads, every call.

Built the way `admitd serve` builds it (`runtime_from_config`, `server._start_admin`),
over real mutual TLS, with Redis behind the Risk API.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from admitd._proto import risk_pb2, risk_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from admitd.admin.caller import peer_verdict
from admitd.admin.config import AdminConfig
from admitd.admin.server import start_admin_server
from admitd.certs.verify import Verdict
from admitd.cli import main as admitd_main
from admitd.config import load_config
from admitd.core.identity import CertificateProblem
from admitd.pki import Issued, issue_crl
from admitd.runtime import Runtime, runtime_from_config
from admitd.server import _start_admin
from admitd.sessions.config import SessionsConfig
from admitd.sessions.memory_store import MemorySessionStore
from tests.admin_callers import caller_check
from tests.conftest import POLICY
from tests.integration.redis_server import RedisServer, free_port, has_redis_server
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ALICE = "spiffe://test.example/user/alice"  # admin principal (the login service)
BOB = "spiffe://test.example/user/bob"  # admin principal and risk approver
LIST = sessions_pb2.ListUserSessionsRequest(user_id="u-1")
BASELINE = risk_pb2.GetBaselineRequest(organisation="acme")
CREATE = sessions_pb2.CreateSessionRequest(
    user_id="u-1", organisation="acme", roles=["viewer"], device_id="d1", user_agent="curl/8"
)


def crl_due_in(issuer: Issued, seconds: float, revoked: tuple[x509.Certificate, ...] = ()) -> bytes:
    """A PEM CRL whose nextUpdate is `seconds` from now (issue_crl counts in days)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(seconds=seconds))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(Encoding.PEM)


@dataclass
class AdminApi:
    runtime: Runtime
    server: grpc.aio.Server
    pki: PkiSet
    crl: Path
    deny_list: Path

    @contextlib.asynccontextmanager
    async def channel(self, leaf: Issued) -> AsyncIterator[grpc.aio.Channel]:
        root = (self.pki.directory / "root.pem").read_bytes()
        chain = leaf.cert_pem + self.pki.client_ca.cert_pem
        credentials = grpc.ssl_channel_credentials(root, leaf.key_pem, chain)
        listen = self.runtime.config.admin.listen  # type: ignore[union-attr]
        async with grpc.aio.secure_channel(listen, credentials) as channel:
            yield channel


async def status_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def write_config(
    work: Path,
    pki: PkiSet,
    redis_url: str,
    *,
    approvers: list[str] | None,
    trust_bundle: Path | None = None,
    crl: bytes | None = None,
) -> Path:
    (work / "policies").mkdir(exist_ok=True)
    (work / "policies" / "routes.yaml").write_text(POLICY)
    (work / "client-ca.crl").write_bytes(crl or issue_crl(pki.client_ca, []))
    (work / "deny.txt").write_text("")
    risk: dict[str, object] = {} if approvers is None else {"approvers": approvers}
    config = {
        "listen": f"127.0.0.1:{free_port()}",
        "metrics_listen": "",
        "policies": str(work / "policies"),
        "dev_mode": True,
        "redis_url": redis_url,
        "tls": {
            "trust_bundle": str(trust_bundle or pki.trust_bundle),
            "crl_files": [str(work / "client-ca.crl")],
            "deny_list": str(work / "deny.txt"),
        },
        "admin": {
            "listen": f"127.0.0.1:{free_port()}",
            "server_cert": str(pki.directory / "server.pem"),
            "server_key": str(pki.directory / "server.key"),
            "principals": [ALICE, BOB],
        },
        "risk": risk,
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    return work / "admitd.yaml"


@contextlib.asynccontextmanager
async def admin_api(config_file: Path, pki: PkiSet) -> AsyncIterator[AdminApi]:
    runtime = runtime_from_config(load_config(config_file, environ={}))
    server = await _start_admin(runtime)
    assert server is not None
    work = config_file.parent
    try:
        yield AdminApi(runtime, server, pki, work / "client-ca.crl", work / "deny.txt")
    finally:
        await server.stop(None)
        await runtime.store.close()


@pytest.fixture
async def api(pki: PkiSet, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[AdminApi]:
    config = write_config(tmp_path, pki, redis_server.url, approvers=[BOB])
    async with admin_api(config, pki) as running:
        yield running


def reload(api: AdminApi) -> None:
    """What `_poll_revocation` does every tls.revocation_poll_seconds."""
    time.sleep(0.01)  # a new mtime even on coarse file systems
    assert api.runtime.reload_revocation()


async def test_an_admin_revoked_by_crl_is_refused_on_its_next_call(api: AdminApi) -> None:
    async with api.channel(api.pki.alice) as channel:
        sessions = sessions_pb2_grpc.SessionsStub(channel)
        assert await status_of(sessions.ListUserSessions(LIST)) is grpc.StatusCode.OK
        api.crl.write_bytes(issue_crl(api.pki.client_ca, [api.pki.alice.cert]))
        reload(api)
        # Same TLS connection: the handshake is long past, the check runs per call.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sessions.CreateSession(CREATE)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (refused.value.details() or "")
    async with api.channel(api.pki.bob) as channel:  # others are unaffected
        stub = sessions_pb2_grpc.SessionsStub(channel)
        assert await status_of(stub.ListUserSessions(LIST)) is grpc.StatusCode.OK


async def test_admitd_revoke_locks_an_admin_out_of_both_services(api: AdminApi) -> None:
    cert, _ = api.pki.write_leaf("bob-revoke", api.pki.bob)
    async with api.channel(api.pki.bob) as channel:
        sessions = sessions_pb2_grpc.SessionsStub(channel)
        risk = risk_pb2_grpc.RiskStub(channel)  # type: ignore[no-untyped-call]
        assert await status_of(risk.GetBaseline(BASELINE)) is grpc.StatusCode.OK
        argv = ["revoke", "--deny-list", str(api.deny_list), "--cert", str(cert)]
        assert await asyncio.to_thread(admitd_main, argv) == 0
        reload(api)
        # A hostile client retries at once, many times: every call is refused.
        calls = [sessions.ListUserSessions(LIST) for _ in range(20)]
        calls += [risk.GetBaseline(BASELINE) for _ in range(20)]
        statuses = await asyncio.gather(*(status_of(call) for call in calls))
    assert set(statuses) == {grpc.StatusCode.UNAUTHENTICATED}


async def test_a_stale_crl_ends_a_cached_admission_without_a_reload(
    pki: PkiSet, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, pki, redis_server.url, approvers=[BOB], crl=crl_due_in(pki.client_ca, 2)
    )
    async with admin_api(config, pki) as api, api.channel(pki.alice) as channel:
        sessions = sessions_pb2_grpc.SessionsStub(channel)
        assert await status_of(sessions.ListUserSessions(LIST)) is grpc.StatusCode.OK
        await asyncio.sleep(2.5)  # past the CRL's nextUpdate; no new CRL arrived
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sessions.ListUserSessions(LIST)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "revocation_status_unknown" in (refused.value.details() or "")


async def test_the_presented_intermediate_is_used(
    pki: PkiSet, redis_server: RedisServer, tmp_path: Path
) -> None:
    """With a root-only trust bundle the intermediate comes from the TLS peer's chain."""
    config = write_config(
        tmp_path, pki, redis_server.url, approvers=[BOB], trust_bundle=pki.root_only_bundle
    )
    config.parent.joinpath("client-ca.crl").unlink()  # its issuer is not in the bundle
    text = yaml.safe_load(config.read_text())
    text["tls"]["crl_files"] = []
    config.write_text(yaml.safe_dump(text))
    async with admin_api(config, pki) as api, api.channel(pki.alice) as channel:
        sessions = sessions_pb2_grpc.SessionsStub(channel)
        assert await status_of(sessions.ListUserSessions(LIST)) is grpc.StatusCode.OK


async def test_risk_api_callers_are_risk_approvers_only(api: AdminApi) -> None:
    async with api.channel(api.pki.alice) as channel:  # admin principal, not an approver
        risk = risk_pb2_grpc.RiskStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await risk.GetBaseline(BASELINE)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "risk.approvers" in (refused.value.details() or "")
        sessions = sessions_pb2_grpc.SessionsStub(channel)  # still an admin
        assert await status_of(sessions.ListUserSessions(LIST)) is grpc.StatusCode.OK
    async with api.channel(api.pki.bob) as channel:
        risk = risk_pb2_grpc.RiskStub(channel)  # type: ignore[no-untyped-call]
        assert await status_of(risk.GetBaseline(BASELINE)) is grpc.StatusCode.OK


async def test_without_risk_approvers_the_risk_api_refuses_everyone(
    pki: PkiSet, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, pki, redis_server.url, approvers=None)
    async with admin_api(config, pki) as api:
        for leaf in (pki.alice, pki.bob):
            async with api.channel(leaf) as channel:
                risk = risk_pb2_grpc.RiskStub(channel)  # type: ignore[no-untyped-call]
                request = risk_pb2.ApproveOverrideRequest(override_id="x")
                assert await status_of(risk.GetBaseline(BASELINE)) is (
                    grpc.StatusCode.PERMISSION_DENIED
                )
                assert await status_of(risk.ApproveOverride(request)) is (
                    grpc.StatusCode.PERMISSION_DENIED
                )


class _NoTotp:
    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> object:
        raise AssertionError("not called")

    async def confirm_enrolment(self, *args: object) -> object:
        raise AssertionError("not called")

    async def verify(self, *args: object) -> object:
        raise AssertionError("not called")


async def test_a_streaming_rpc_on_the_admin_port_is_not_served(pki: PkiSet) -> None:
    """The caller check wraps unary RPCs; anything else would bypass it, so it is refused."""
    served: list[object] = []

    async def watch(request: bytes, context: object) -> AsyncIterator[bytes]:
        served.append(request)
        yield b"event"

    stream = grpc.method_handlers_generic_handler(
        "test.Stream", {"Watch": grpc.unary_stream_rpc_method_handler(watch)}
    )
    config = AdminConfig(
        server_cert=pki.directory / "server.pem",
        server_key=pki.directory / "server.key",
        principals=frozenset({ALICE}),
        listen=f"127.0.0.1:{free_port()}",
    )
    server = await start_admin_server(
        config,
        pki.trust_bundle,
        MemorySessionStore(),
        _NoTotp(),  # type: ignore[arg-type]
        SessionsConfig(),
        callers=caller_check(pki.trust_bundle)[0],
        extra_handlers=[stream],
    )
    root = (pki.directory / "root.pem").read_bytes()
    chain = pki.alice.cert_pem + pki.client_ca.cert_pem
    credentials = grpc.ssl_channel_credentials(root, pki.alice.key_pem, chain)
    try:
        async with grpc.aio.secure_channel(config.listen, credentials) as channel:
            call = channel.unary_stream("/test.Stream/Watch")(b"hi")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in call:
                    pass
    finally:
        await server.stop(None)
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED and served == []


def test_an_auth_context_without_a_certificate_is_missing() -> None:
    def never(leaf: bytes, chain: object, now: datetime) -> Verdict:
        raise AssertionError("nothing to verify")

    verdict = peer_verdict({"transport_security_type": [b"ssl"]}, never, datetime.now(UTC))
    assert verdict.problem is CertificateProblem.MISSING
