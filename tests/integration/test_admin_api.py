"""The admin API for real: grpc.aio over mutual TLS, sessions and TOTP state in a real Redis."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pyotp
import pytest

from admitd._proto import sessions_pb2 as pb
from admitd._proto import sessions_pb2_grpc
from admitd.admin import AdminConfig, start_admin_server
from admitd.admin.cli import register
from admitd.envelope import Sealer
from admitd.errors import AdmitdError, ConfigError
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.config import MfaConfig
from admitd.mfa.ports import MfaResult, TotpEnrolment
from admitd.mfa.state import RedisMfaState
from admitd.mfa.totp import TotpService
from admitd.pki import Issued
from admitd.sessions.config import SessionsConfig
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import parse_session_token
from tests.admin_callers import caller_check
from tests.integration.redis_server import RedisServer, free_port, has_redis_server
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ALICE = "spiffe://test.example/user/alice"  # the only admin principal
ORG = "acme"


@dataclass
class Api:
    address: str
    pki: PkiSet
    redis: RedisServer

    def credentials(self, leaf: Issued | None) -> grpc.ChannelCredentials:
        root = (self.pki.directory / "root.pem").read_bytes()
        if leaf is None:
            return grpc.ssl_channel_credentials(root_certificates=root)
        chain = leaf.cert_pem + self.pki.client_ca.cert_pem
        return grpc.ssl_channel_credentials(root, leaf.key_pem, chain)

    @contextlib.asynccontextmanager
    async def stub(self, leaf: Issued | None) -> AsyncIterator[sessions_pb2_grpc.SessionsStub]:
        async with grpc.aio.secure_channel(self.address, self.credentials(leaf)) as channel:
            yield sessions_pb2_grpc.SessionsStub(channel)


@pytest.fixture
async def api(pki: PkiSet, redis_server: RedisServer) -> AsyncIterator[Api]:
    redis_server.start()
    state_client = client_from_url(redis_server.url)
    await state_client.flushdb()
    store = RedisSessionStore(client_from_url(redis_server.url))
    store.start()
    mfa = MfaConfig(max_failures=3, backoff_base_seconds=0)
    totp = TotpService(
        RedisMfaState(state_client), Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)), store, mfa
    )
    config = AdminConfig(
        server_cert=pki.directory / "server.pem",
        server_key=pki.directory / "server.key",
        principals=frozenset({ALICE}),
        listen=f"127.0.0.1:{free_port()}",
    )
    callers = caller_check(pki.trust_bundle)[0]
    server = await start_admin_server(
        config, pki.trust_bundle, store, totp, SessionsConfig(), callers=callers
    )
    yield Api(config.listen, pki, redis_server)
    await server.stop(None)
    await store.close()
    await state_client.aclose()


def main(argv: list[str]) -> int:
    """`admitd sessions ...` as `admitd.cli.main` runs it (whether or not it is wired in yet)."""
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except AdmitdError as exc:
        print(f"admitd: error: {exc}", file=sys.stderr)
        return 2


def code_for(uri: str, when: float) -> str:
    return pyotp.TOTP(pyotp.parse_uri(uri).secret).at(when)


async def enrol(stub: sessions_pb2_grpc.SessionsStub, user: str, now: float) -> str:
    begun = await stub.BeginTotpEnrolment(
        pb.BeginTotpEnrolmentRequest(user_id=user, organisation=ORG)
    )
    confirm = pb.ConfirmTotpEnrolmentRequest(
        user_id=user, organisation=ORG, code=code_for(begun.provisioning_uri, now - 30)
    )
    assert (await stub.ConfirmTotpEnrolment(confirm)).result == pb.MFA_RESULT_OK
    return begun.provisioning_uri


def create_request(user: str, roles: tuple[str, ...] = ("admin",)) -> pb.CreateSessionRequest:
    return pb.CreateSessionRequest(
        user_id=user,
        organisation=ORG,
        roles=roles,
        device_id="laptop-1",
        user_agent="curl/8",
        ip="192.0.2.7",
    )


async def test_session_life_cycle(api: Api) -> None:
    async with api.stub(api.pki.alice) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateSession(create_request("u-admin"))
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "no active second factor" in (refused.value.details() or "")

        uri = await enrol(stub, "u-admin", time.time())
        created = await stub.CreateSession(create_request("u-admin"))
        assert created.session_token and len(created.session_id) == 64
        assert created.expires_at == pytest.approx(time.time() + 43200, abs=5)

        listed = await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u-admin"))
        assert [s.session_id for s in listed.sessions] == [created.session_id]
        assert list(listed.factors) == [pb.MFA_METHOD_TOTP]
        assert created.session_token.encode() not in listed.SerializeToString()
        assert not listed.sessions[0].HasField("mfa_verified_at")

        code = code_for(uri, time.time())
        verify = pb.VerifyMfaRequest(session_token=created.session_token, code=code)
        verified = await stub.VerifyMfa(verify)
        assert verified.result == pb.MFA_RESULT_OK
        assert verified.mfa_verified_at == pytest.approx(time.time(), abs=5)
        assert (await stub.VerifyMfa(verify)).result == pb.MFA_RESULT_REPLAYED
        listed = await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u-admin"))
        assert listed.sessions[0].mfa_verified_at == verified.mfa_verified_at
        assert listed.sessions[0].mfa_method == pb.MFA_METHOD_TOTP

        selector = pb.SessionSelector(user_id="u-admin", session_id=created.session_id)
        assert (await stub.RevokeSession(pb.RevokeSessionRequest(session=selector))).revoked
        assert not (await stub.RevokeSession(pb.RevokeSessionRequest(session=selector))).revoked
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.VerifyMfa(pb.VerifyMfaRequest(session=selector, code=code))
        assert gone.value.code() is grpc.StatusCode.NOT_FOUND

        for _ in range(2):
            await stub.CreateSession(create_request("u-admin"))
        revoked = await stub.RevokeUserSessions(pb.RevokeUserSessionsRequest(user_id="u-admin"))
        assert revoked.revoked == 2
        listed = await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u-admin"))
        assert list(listed.sessions) == []


async def test_verification_is_rate_limited(api: Api) -> None:
    async with api.stub(api.pki.alice) as stub:
        uri = await enrol(stub, "u-guess", time.time())
        created = await stub.CreateSession(create_request("u-guess", ("viewer",)))
        results = [
            (
                await stub.VerifyMfa(
                    pb.VerifyMfaRequest(session_token=created.session_token, code=c)
                )
            ).result
            for c in ("000000", "111111", "222222", code_for(uri, time.time()))
        ]
    assert results == [pb.MFA_RESULT_INVALID] * 3 + [pb.MFA_RESULT_LOCKED_OUT]


async def test_a_certificate_not_in_the_admin_list_is_denied(api: Api) -> None:
    async with api.stub(api.pki.bob) as stub:
        for call in (
            stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u-admin")),
            stub.CreateSession(create_request("u-x", ("viewer",))),
            stub.RevokeUserSessions(pb.RevokeUserSessionsRequest(user_id="u-admin")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call
            assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("who", ["no-certificate", "untrusted-ca"])
async def test_a_caller_without_an_acceptable_certificate_cannot_connect(
    api: Api, who: str
) -> None:
    leaf = None if who == "no-certificate" else api.pki.untrusted
    async with api.stub(leaf) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u"), timeout=5)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_redis_outage_is_unavailable_then_recovers(api: Api) -> None:
    async with api.stub(api.pki.alice) as stub:
        api.redis.stop()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as down:
                await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u"))
            assert down.value.code() is grpc.StatusCode.UNAVAILABLE
            assert down.value.details() == "session store unavailable"
        finally:
            api.redis.start()
        listed = await stub.ListUserSessions(pb.ListUserSessionsRequest(user_id="u"))
        assert list(listed.sessions) == []


async def test_the_cli_drives_the_same_api(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = api.pki.write_leaf("cli-alice", api.pki.alice, api.pki.client_ca)
    tls = [
        "--address",
        api.address,
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--ca",
        str(api.pki.directory / "root.pem"),
    ]

    async def run(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["sessions", argv[0], *tls, *argv[1:]])
        return code, capsys.readouterr().out

    qr = tmp_path / "qr.png"
    code, out = await run("totp-enrol", "--user", "u-cli", "--org", ORG, "--qr-png", str(qr))
    uri = out.strip()
    assert (
        code == 0 and uri.startswith("otpauth://totp/") and qr.read_bytes().startswith(b"\x89PNG")
    )
    now = time.time()
    assert await run(
        "totp-confirm", "--user", "u-cli", "--org", ORG, "--code", code_for(uri, now - 30)
    ) == (0, "ok\n")
    code, out = await run(
        "create", "--user", "u-cli", "--org", ORG, "--role", "finance", "--device", "d1"
    )
    token = out.strip()
    assert code == 0 and token.count(".") == 1
    (tmp_path / "token").write_text(token)
    code, out = await run(
        "verify", "--token-file", str(tmp_path / "token"), "--code", code_for(uri, now)
    )
    assert code == 0 and out.startswith("ok\n")
    code, out = await run("list", "--user", "u-cli")
    assert code == 0 and "factors: totp" in out and "roles=finance" in out and token not in out
    assert await run("revoke-user", "--user", "u-cli") == (0, "revoked 1 session(s)\n")
    assert await run("revoke", "--token-file", str(tmp_path / "token")) == (
        1,
        "no such session (already revoked or expired)\n",
    )


async def test_the_cli_reports_a_denial(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = api.pki.write_leaf("cli-bob", api.pki.bob, api.pki.client_ca)
    argv = ["sessions", "list", "--user", "u", "--address", api.address, "--cert", str(cert)]
    argv += ["--key", str(key), "--ca", str(api.pki.directory / "root.pem")]
    assert await asyncio.to_thread(main, argv) == 2
    assert "PERMISSION_DENIED" in capsys.readouterr().err


async def test_a_busy_admin_port_is_a_config_error(pki: PkiSet) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = AdminConfig(
            server_cert=pki.directory / "server.pem",
            server_key=pki.directory / "server.key",
            principals=frozenset({ALICE}),
            listen=f"127.0.0.1:{busy.getsockname()[1]}",
        )
        with pytest.raises(ConfigError, match=r"admin.listen: cannot listen on 127.0.0.1:"):
            await start_admin_server(
                config,
                pki.trust_bundle,
                MemorySessionStore(),
                _NoTotp(),
                SessionsConfig(),
                callers=caller_check(pki.trust_bundle)[0],
            )


class _NoTotp:
    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        raise AssertionError("not called")

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        raise AssertionError("not called")

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        raise AssertionError("not called")


async def test_an_enrolment_grant_from_the_cli_reaches_the_session(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = api.pki.write_leaf("cli-grant", api.pki.alice, api.pki.client_ca)
    argv = ["sessions", "create", "--address", api.address, "--cert", str(cert)]
    argv += ["--key", str(key), "--ca", str(api.pki.directory / "root.pem")]
    argv += ["--user", "u-new", "--org", ORG, "--device", "d1", "--enrolment-grant"]
    before = time.time()
    assert await asyncio.to_thread(main, argv) == 0
    ref = parse_session_token(capsys.readouterr().out.strip())
    assert ref is not None
    store = RedisSessionStore(client_from_url(api.redis.url), cache_ttl=0)
    try:
        session = await store.get(ref)
        assert session is not None and session.enrolment_grant_until is not None
        assert before + 600 <= session.enrolment_grant_until <= time.time() + 600
    finally:
        await store.close()
    async with api.stub(api.pki.alice) as stub:
        request = create_request("u-new", roles=("viewer",))
        request.enrolment_grant_seconds = 86_400
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateSession(request)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "enrolment_grant_seconds must be 1-3600" in (refused.value.details() or "")
