"""`admitd.v1.Keys` for real: grpc.aio over mutual TLS, Redis, a local keyring, custodians.

Alice and Bob are custodians (different certificates, different users); the `proxy`
certificate is a third custodian principal that maps to Alice's user, so "a different
certificate" alone is not enough; `revoked`'s certificate is no custodian at all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis

from admitd._proto import keys_pb2 as pb
from admitd._proto import keys_pb2_grpc
from admitd.admin.config import AdminConfig
from admitd.admin.server import server_credentials
from admitd.cli import build_parser, main
from admitd.cli_setup import config_file
from admitd.custody.apply import KmsChanges
from admitd.custody.proof import ProofChecker
from admitd.custody.provider import PROVIDER_KEY, ProviderSettings, settings_from_config
from admitd.custody.servicer import keys_handler
from admitd.custody.store import KeyCustody
from admitd.devstack.processes import ProcessGroup, wait_for_port
from admitd.envelope import Context, RecordType, Sealer, json_from_envelope
from admitd.envelope.records import versions_in_use
from admitd.kms import LocalKms, create_keyring_file
from admitd.kms.keyring_file import keyring_from_file
from admitd.mfa.passkey_store import PasskeyVerification, RedisPasskeyStore
from admitd.pki import Issued
from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token
from tests.integration.redis_server import RedisServer, free_port, has_redis_server
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ALICE = "spiffe://test.example/user/alice"
BOB = "spiffe://test.example/user/bob"
ALICE_AGAIN = "spiffe://test.example/proxy/edge"  # another certificate of Alice's user
CUSTODIANS = {ALICE: "alice@acme", BOB: "bob@acme", ALICE_AGAIN: "alice@acme"}
ALIAS = "kms/session-secrets"
ALIASES = (ALIAS, "kms/audit-log")
YUBIKEY = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
OTHER_MODEL = "08987058-cadc-4b81-b6e1-30de50dcbe96"


class Audit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self.events.append((event_type, fields))

    def types(self, prefix: str = "kms.key_change.") -> list[str]:
        return [t for t, _ in self.events if t.startswith(prefix)]

    def whys(self) -> list[str]:
        return [f["why"] for t, f in self.events if t == "kms.key_change.refused"]


class KnownRandom:
    """Deterministic bytes, remembering every 32-byte value: all master keys ever made."""

    def __init__(self) -> None:
        self.n = 0
        self.keys: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        self.n += 1
        value = bytes((self.n * 7 + i) % 256 for i in range(size))
        if size == 32:
            self.keys.append(value)
        return value


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    address: str
    pki: PkiSet
    audit: Audit
    custody: KeyCustody
    kms: LocalKms
    keyring: Path
    randbytes: KnownRandom
    clock: Clock
    sessions: RedisSessionStore
    passkeys: RedisPasskeyStore
    url: str

    def stub(self, leaf: Issued) -> contextlib.AbstractAsyncContextManager[keys_pb2_grpc.KeysStub]:
        return keys_stub(self.address, self.pki, leaf)

    async def step_up(
        self,
        user: str,
        *,
        method: MfaMethod = MfaMethod.PASSKEY,
        ago: float = 5.0,
        aaguid: str = YUBIKEY,
        receipt: bool = True,
    ) -> str:
        """A live session of `user` whose last step-up was `method`, `ago` seconds ago."""
        token, ref = new_session_token(user)
        now = self.clock()
        session = make_session(
            ref.session_id, user_id=user, now=now, mfa_ago=ago, mfa_method=method
        )
        await self.sessions.create(ref, session)
        if receipt and method is MfaMethod.PASSKEY:
            await self.passkeys.record_verification(
                user, PasskeyVerification(now - ago, "cred-" + user, aaguid)
            )
        return token


@contextlib.asynccontextmanager
async def keys_stub(
    address: str, pki: PkiSet, leaf: Issued
) -> AsyncIterator[keys_pb2_grpc.KeysStub]:
    root = (pki.directory / "root.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(
        root, leaf.key_pem, leaf.cert_pem + pki.client_ca.cert_pem
    )
    async with grpc.aio.secure_channel(address, credentials) as channel:
        yield keys_pb2_grpc.KeysStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
async def api(pki: PkiSet, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Api]:
    client = client_from_url(redis_server.url)
    await client.flushdb()
    randbytes, audit = KnownRandom(), Audit()
    keyring = tmp_path / "keyring.json"
    create_keyring_file(keyring, ALIASES, randbytes=randbytes)
    kms = LocalKms(keyring, randbytes=randbytes)
    await seed(redis_server.url, Sealer(kms))
    sessions, passkeys = RedisSessionStore(client), RedisPasskeyStore(client)
    clock = Clock(time.time())
    custody = KeyCustody(
        client,
        KmsChanges(kms, lambda: redis.Redis.from_url(redis_server.url), patterns=("admitd:*",)),
        ProofChecker(sessions, passkeys, max_age_seconds=300, aaguids=frozenset({YUBIKEY})),
        audit,
        custodians=CUSTODIANS,
        change_ttl_seconds=3600,
        clock=clock,
    )
    config = AdminConfig(
        server_cert=pki.directory / "server.pem",
        server_key=pki.directory / "server.key",
        principals=frozenset({ALICE}),
        listen=f"127.0.0.1:{free_port()}",
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((keys_handler(custody, CUSTODIANS),))
    server.add_secure_port(config.listen, server_credentials(config, [pki.trust_bundle]))
    await server.start()
    yield Api(
        config.listen,
        pki,
        audit,
        custody,
        kms,
        keyring,
        randbytes,
        clock,
        sessions,
        passkeys,
        redis_server.url,
    )
    await custody.idle()
    await server.stop(None)
    await client.aclose()


async def seed(url: str, sealer: Sealer) -> None:
    sync = redis.Redis.from_url(url)
    for n in range(5):
        context = Context(RecordType.TOTP_SECRET, f"user-{n}", "acme")
        sync.set(f"admitd:totp:{n}", json_from_envelope(await sealer.seal(b"s", context)))
    sync.close()


def rotate(token: str, alias: str = ALIAS) -> pb.RequestKeyChangeRequest:
    return pb.RequestKeyChangeRequest(
        kind=pb.KEY_CHANGE_KIND_ROTATE, alias=alias, reason="quarterly", session_token=token
    )


def approve(change_id: str, token: str) -> pb.ApproveKeyChangeRequest:
    return pb.ApproveKeyChangeRequest(change_id=change_id, session_token=token)


async def refused(call: Callable[[], object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call()  # type: ignore[misc]
    return info.value


def active(api: Api, alias: str = ALIAS) -> int:
    return api.kms.active_version(alias)


async def test_request_by_a_refused_by_a_applied_by_b(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        a_token = await api.step_up("alice@acme")
        change = (await alice.RequestKeyChange(rotate(a_token))).change
        assert (change.status, change.requested_by, change.requested_user) == (
            pb.KEY_CHANGE_STATUS_PENDING,
            ALICE,
            "alice@acme",
        )
        assert active(api) == 1  # nothing happens until someone else approves
        error = await refused(lambda: alice.ApproveKeyChange(approve(change.change_id, a_token)))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "different custodian" in (error.details() or "")
        b_token = await api.step_up("bob@acme")
        done = (await bob.ApproveKeyChange(approve(change.change_id, b_token))).change
        assert (done.status, done.approved_by, done.approved_user, done.result) == (
            pb.KEY_CHANGE_STATUS_APPLIED,
            BOB,
            "bob@acme",
            "v2 active",
        )
        listed = await bob.ListKeys(pb.ListKeysRequest())
        states = {(v.alias, v.version): v.state for v in listed.versions}
        assert states[(ALIAS, 2)] == pb.KEY_STATE_ACTIVE
        assert states[(ALIAS, 1)] == pb.KEY_STATE_DECRYPT_ONLY
        # Approving again never applies twice.
        error = await refused(lambda: bob.ApproveKeyChange(approve(change.change_id, b_token)))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert active(api) == 2
    assert api.audit.types() == [
        "kms.key_change.requested",
        "kms.key_change.refused",
        "kms.key_change.approved",
        "kms.key_change.applied",
        "kms.key_change.refused",
    ]
    assert api.audit.whys() == ["same_admin", "applied"]
    rotated = [f for t, f in api.audit.events if t == "kms.key.rotated"]
    assert rotated == [
        {
            "alias": ALIAS,
            "previous_version": "1",
            "active_version": "2",
            "change_id": change.change_id,
        }
    ]
    requested = api.audit.events[0][1]
    assert requested["principal"] == ALICE and requested["aaguid"] == YUBIKEY
    assert a_token not in repr(api.audit.events) and b_token not in repr(api.audit.events)


async def test_same_user_with_another_certificate_is_refused(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.proxy) as again:
        change = (await alice.RequestKeyChange(rotate(await api.step_up("alice@acme")))).change
        token = await api.step_up("alice@acme")
        error = await refused(lambda: again.ApproveKeyChange(approve(change.change_id, token)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "different person" in (error.details() or "")
    assert api.audit.whys() == ["same_user"] and active(api) == 1


async def test_expired_change_cannot_be_approved(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        change = (await alice.RequestKeyChange(rotate(await api.step_up("alice@acme")))).change
        api.clock.now += 3601
        token = await api.step_up("bob@acme")  # fresh MFA at the later time
        error = await refused(lambda: bob.ApproveKeyChange(approve(change.change_id, token)))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "expired" in (error.details() or "")
        listed = await bob.ListKeyChanges(pb.ListKeyChangesRequest())
        assert [c.status for c in listed.changes] == [pb.KEY_CHANGE_STATUS_EXPIRED]
        pending = await bob.ListKeyChanges(pb.ListKeyChangesRequest(pending_only=True))
        assert list(pending.changes) == []
    assert active(api) == 1
    assert api.audit.types() == [
        "kms.key_change.requested",
        "kms.key_change.expired",
        "kms.key_change.refused",
    ]


async def test_expiry_seen_by_a_listing_is_audited_once(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice:
        await alice.RequestKeyChange(rotate(await api.step_up("alice@acme")))
        api.clock.now += 3601
        for _ in range(2):
            listed = await alice.ListKeyChanges(pb.ListKeyChangesRequest())
            assert [c.status for c in listed.changes] == [pb.KEY_CHANGE_STATUS_EXPIRED]
    assert api.audit.types() == ["kms.key_change.requested", "kms.key_change.expired"]


@pytest.mark.parametrize(
    ("step_up", "why", "phrase"),
    [
        ({"ago": 301.0}, "mfa_stale", "older than 300"),
        ({"method": MfaMethod.TOTP}, "mfa_totp_only", "not a passkey"),
        ({"aaguid": OTHER_MODEL}, "mfa_aaguid", "keys.aaguids"),
        ({"aaguid": ""}, "mfa_aaguid", "keys.aaguids"),
        ({"receipt": False}, "mfa_no_receipt", "no record of a passkey"),
    ],
    ids=["stale", "totp-only", "aaguid-not-allowed", "aaguid-unknown", "session-claim-only"],
)
async def test_request_needs_a_fresh_allowed_passkey(
    api: Api, step_up: dict[str, object], why: str, phrase: str
) -> None:
    async with api.stub(api.pki.alice) as alice:
        token = await api.step_up("alice@acme", **step_up)  # type: ignore[arg-type]
        error = await refused(lambda: alice.RequestKeyChange(rotate(token)))
        listed = await alice.ListKeyChanges(pb.ListKeyChangesRequest())
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert phrase in (error.details() or "") and "step up with a passkey" in (error.details() or "")
    assert api.audit.whys() == [why] and list(listed.changes) == []


async def test_approval_needs_a_fresh_passkey_too(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        change = (await alice.RequestKeyChange(rotate(await api.step_up("alice@acme")))).change
        stale = await api.step_up("bob@acme", ago=400)
        error = await refused(lambda: bob.ApproveKeyChange(approve(change.change_id, stale)))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        # Alice's fresh session does not vouch for Bob.
        alices = await api.step_up("alice@acme")
        error = await refused(lambda: bob.ApproveKeyChange(approve(change.change_id, alices)))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        error = await refused(lambda: bob.ApproveKeyChange(approve(change.change_id, "")))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert api.audit.whys() == ["mfa_stale", "mfa_other_user", "mfa_no_session"]
    assert active(api) == 1


async def test_twenty_concurrent_approvals_apply_once(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        change = (await alice.RequestKeyChange(rotate(await api.step_up("alice@acme")))).change
        token = await api.step_up("bob@acme")
        results = await asyncio.gather(
            *(bob.ApproveKeyChange(approve(change.change_id, token)) for _ in range(20)),
            return_exceptions=True,
        )
    applied = [r for r in results if isinstance(r, pb.ApproveKeyChangeResponse)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(applied) == 1 and len(errors) == 19
    assert {e.code() for e in errors} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert active(api) == 2 and len(api.kms.versions(ALIAS)) == 2
    assert api.audit.types().count("kms.key_change.applied") == 1
    assert [t for t, _ in api.audit.events].count("kms.key.rotated") == 1


async def test_reencrypt_then_retire_through_change_requests(api: Api) -> None:
    sync = redis.Redis.from_url(api.url)
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        await dual(api, alice, bob, rotate(await api.step_up("alice@acme")))
        request = pb.RequestKeyChangeRequest(
            kind=pb.KEY_CHANGE_KIND_RETIRE, alias=ALIAS, version=1, reason="done"
        )
        # Still in use: the change is approved, applying it fails, nothing is destroyed.
        failed = await dual(api, alice, bob, request)
        assert failed.status == pb.KEY_CHANGE_STATUS_FAILED and "in use" in failed.error
        reencrypt = pb.RequestKeyChangeRequest(
            kind=pb.KEY_CHANGE_KIND_REENCRYPT, alias=ALIAS, reason="after rotation"
        )
        started = await dual(api, alice, bob, reencrypt)
        assert started.status == pb.KEY_CHANGE_STATUS_APPROVED  # runs in the background
        await api.custody.idle()
        listed = await bob.ListKeyChanges(pb.ListKeyChangesRequest())
        done = next(c for c in listed.changes if c.change_id == started.change_id)
        assert done.status == pb.KEY_CHANGE_STATUS_APPLIED and "5 re-wrapped" in done.result
        assert versions_in_use(sync, ALIAS, patterns=("admitd:*",)) == {2: 5}
        retired = await dual(api, alice, bob, request)
        assert (retired.status, retired.result) == (pb.KEY_CHANGE_STATUS_APPLIED, "v1 retired")
    sync.close()
    kinds = api.audit.types()
    assert kinds.count("kms.key_change.failed") == 1 and kinds.count("kms.key_change.applied") == 3
    assert "kms.reencrypt.completed" in [t for t, _ in api.audit.events]


async def test_request_refuses_what_could_never_apply(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice:
        token = await api.step_up("alice@acme")
        cases = [
            (rotate(token, "kms/unknown"), grpc.StatusCode.NOT_FOUND),
            (rotate(token, "not-an-alias"), grpc.StatusCode.INVALID_ARGUMENT),
            (
                pb.RequestKeyChangeRequest(
                    kind=pb.KEY_CHANGE_KIND_RETIRE, alias=ALIAS, version=1, reason="r",
                    session_token=token,
                ),
                grpc.StatusCode.FAILED_PRECONDITION,  # the active version
            ),
            (
                pb.RequestKeyChangeRequest(alias=ALIAS, reason="r", session_token=token),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
            (
                pb.RequestKeyChangeRequest(
                    kind=pb.KEY_CHANGE_KIND_ROTATE, alias=ALIAS, session_token=token
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
            ),
        ]  # fmt: skip
        for request, code in cases:
            error = await refused(lambda request=request: alice.RequestKeyChange(request))
            assert error.code() is code, request


async def test_non_custodian_is_refused_and_audited(api: Api) -> None:
    async with api.stub(api.pki.revoked) as eve:
        calls = [
            lambda: eve.RequestKeyChange(rotate("x")),
            lambda: eve.ApproveKeyChange(approve("0" * 16, "x")),
            lambda: eve.ListKeyChanges(pb.ListKeyChangesRequest()),
            lambda: eve.ListKeys(pb.ListKeysRequest()),
        ]
        for call in calls:
            error = await refused(call)
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED
            assert "keys.custodians" in (error.details() or "")
    assert api.audit.whys() == ["not_custodian"] * 4
    assert all("user/revoked" in f["principal"] for t, f in api.audit.events)


async def dual(
    api: Api,
    alice: keys_pb2_grpc.KeysStub,
    bob: keys_pb2_grpc.KeysStub,
    request: pb.RequestKeyChangeRequest,
) -> pb.KeyChange:
    request.session_token = await api.step_up("alice@acme")
    change = (await alice.RequestKeyChange(request)).change
    token = await api.step_up("bob@acme")
    return (await bob.ApproveKeyChange(approve(change.change_id, token))).change


# --- no key material leaves admitd -------------------------------------------------------


def forms(key: bytes) -> list[bytes]:
    """Every way a key could be spelled in a response or on stdout."""
    b64, url = base64.b64encode(key), base64.urlsafe_b64encode(key)
    return [key, key.hex().encode(), key.hex().upper().encode(), b64, b64.rstrip(b"="), url,
            url.rstrip(b"=")]  # fmt: skip


def assert_no_key_material(blobs: list[bytes], keys: list[bytes]) -> None:
    assert keys, "no key material was recorded: the test would prove nothing"
    for blob in blobs:
        for key in keys:
            for form in forms(key):
                assert form not in blob


def test_the_keys_service_has_no_export_rpc() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["Keys"].methods_by_name)
    assert methods == {"RequestKeyChange", "ApproveKeyChange", "ListKeyChanges", "ListKeys"}
    for name in methods:
        assert not any(word in name.lower() for word in ("export", "dump", "material", "backup"))
    # No response message has a bytes field anywhere: nothing could carry raw key bytes.
    for name, message in pb.DESCRIPTOR.message_types_by_name.items():
        assert not [f for f in message.fields if f.type == f.TYPE_BYTES], name


async def test_no_rpc_returns_key_material(api: Api) -> None:
    """Every Keys RPC, success and refusal, searched for every master key ever made."""
    blobs: list[bytes] = []
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        # A refusal's message too (retiring the active version).
        early = pb.RequestKeyChangeRequest(
            kind=pb.KEY_CHANGE_KIND_RETIRE, alias=ALIAS, version=1, reason="r"
        )
        error = await refused(lambda: dual(api, alice, bob, early))
        blobs.append((error.details() or "").encode())
        for kind, version in (
            (pb.KEY_CHANGE_KIND_ROTATE, 0),
            (pb.KEY_CHANGE_KIND_REENCRYPT, 0),
            (pb.KEY_CHANGE_KIND_RETIRE, 1),
        ):
            request = pb.RequestKeyChangeRequest(
                kind=kind, alias=ALIAS, version=version, reason="r"
            )
            change = await dual(api, alice, bob, request)
            blobs.append(change.SerializeToString())
            await api.custody.idle()
        blobs.append((await bob.ListKeyChanges(pb.ListKeyChangesRequest())).SerializeToString())
        blobs.append((await bob.ListKeys(pb.ListKeysRequest())).SerializeToString())
        listed = await bob.ListKeys(pb.ListKeysRequest())
        blobs.append(str(listed).encode())
    blobs.append(repr(api.audit.events).encode())
    assert all(blobs)  # every call above really produced something to search
    ring = keyring_from_file(api.keyring)[0]
    live = [e.key for entries in ring.aliases.values() for e in entries if e.key is not None]
    # kms/audit-log v1 and kms/session-secrets v2 (v1 retired): all made by KnownRandom.
    assert len(live) == 2 and all(k in api.randbytes.keys for k in live)
    assert len(api.randbytes.keys) >= 3  # the retired v1 is searched for as well
    assert_no_key_material(blobs, api.randbytes.keys)
    with pytest.raises(AssertionError):  # the search itself finds a key where there is one
        assert_no_key_material([b'"' + base64.b64encode(live[0]) + b'"'], api.randbytes.keys)


KEYS_COMMANDS = {
    "init", "list", "rotate", "reencrypt", "retire",  # on the keyring (the last three --offline)
    "provider-accept",  # --offline too: records the config's KMS provider as approved
    "request", "approve", "changes", "list-remote",  # over the admin API
}  # fmt: skip


def keys_subcommands() -> set[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    keys = commands.choices["keys"]
    sub = next(a for a in keys._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_admitd_keys_has_no_export_subcommand() -> None:
    names = keys_subcommands()
    assert names == KEYS_COMMANDS
    assert not [n for n in names if any(w in n for w in ("export", "dump", "show", "backup"))]


async def test_no_keys_subcommand_prints_key_material(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every `admitd keys` sub-command, remote and offline, against the same keyring."""
    tls = []
    for name, leaf in (("alice", api.pki.alice), ("bob", api.pki.bob)):
        cert, key = api.pki.write_leaf(f"keys-{name}", leaf, api.pki.client_ca)
        token = tmp_path / f"{name}.token"
        token.write_text(await api.step_up(f"{name}@acme") + "\n")
        tls.append([
            "--address", api.address, "--cert", str(cert), "--key", str(key),
            "--ca", str(api.pki.directory / "root.pem"), "--session-token-file", str(token),
        ])  # fmt: skip
    config = tmp_path / "admitd.yaml"
    config.write_text(
        f"kms:\n  provider: local\n  keyring: {api.keyring}\n  aliases: [{', '.join(ALIASES)}]\n"
    )
    offline = ["--config", str(config), "--redis-url", api.url]
    seen: list[bytes] = []
    ran: set[str] = set()
    keys = list(api.randbytes.keys)

    async def run(argv: list[str]) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["keys", *argv])
        out, err = capsys.readouterr()
        seen.extend((out.encode(), err.encode()))
        ran.add(argv[0])
        ring = keyring_from_file(api.keyring)[0]  # the offline ones make keys with os.urandom
        keys.extend(e.key for es in ring.aliases.values() for e in es if e.key is not None)
        return code, out, err

    def remote(who: int, *argv: str, token: bool = True) -> list[str]:
        flags = tls[who] if token else tls[who][:-2]
        return [argv[0], *flags, *argv[1:]]

    with caplog.at_level(logging.INFO, logger="admitd.audit"):
        code, out, _ = await run(remote(0, "list-remote", token=False))
        assert code == 0 and f"{ALIAS}\tv1\tactive" in out
        code, out, _ = await run(remote(0, "request", "rotate", "--alias", ALIAS, "--reason", "q"))
        change_id = out.split("\t", 1)[0]
        assert code == 0 and f"admitd keys approve {change_id}" in out
        code, out, _ = await run(remote(1, "approve", change_id))
        assert code == 0 and "\tapplied\t" in out and "result=v2 active" in out
        code, out, _ = await run(
            remote(0, "request", "reencrypt", "--alias", ALIAS, "--reason", "after rotation")
        )
        code, _, _ = await run(remote(1, "approve", out.split("\t", 1)[0]))
        await api.custody.idle()
        code, out, _ = await run(remote(1, "changes", token=False))
        assert code == 0 and out.count("\tapplied\t") == 2 and "5 re-wrapped" in out
        code, out, _ = await run(remote(1, "changes", "--pending", token=False))
        assert (code, out) == (0, "")

        for argv in (
            ["rotate", "--alias", ALIAS, *offline],
            ["reencrypt", "--alias", ALIAS, *offline],
            ["retire", "--alias", ALIAS, "--version", "1", *offline],
        ):
            code, out, err = await run(argv)
            assert code == 2 and out == "" and "--offline" in err
            assert f"admitd keys request {argv[0]} --alias {ALIAS}" in err
        assert api.kms.versions(ALIAS)[-1].version == 2  # nothing happened
        assert (await run(["rotate", "--offline", "--alias", ALIAS, *offline]))[0] == 0
        assert (await run(["reencrypt", "--offline", "--alias", ALIAS, *offline]))[0] == 0
        for version in ("1", "2"):
            argv = ["retire", "--offline", "--alias", ALIAS, "--version", version, *offline]
            assert (await run(argv))[0] == 0
        assert (await run(["init", *offline]))[0] == 0
        assert (await run(["provider-accept", *offline]))[0] == 2
        assert (await run(["provider-accept", "--offline", *offline]))[0] == 0
        code, out, _ = await run(["list", *offline])
        assert code == 0 and f"{ALIAS}\tv3\tactive" in out and f"{ALIAS}\tv2\tretired" in out
    assert ran == KEYS_COMMANDS
    offline_events = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "admitd.audit"
    ]
    assert [e["event"] for e in offline_events][:2] == ["kms.offline.started", "kms.key.rotated"]
    assert all(e["mode"] == "offline" and e["operator"] and e["host"] for e in offline_events)
    assert {e["command"] for e in offline_events} == {
        "keys rotate", "keys reencrypt", "keys retire", "keys provider-accept"
    }  # fmt: skip
    assert len(keys) > len(api.randbytes.keys)  # the offline rotation's key is searched too
    assert_no_key_material(seen, keys)


# --- wired by admitd's own start-up --------------------------------------------------------


async def test_admitd_serves_the_keys_api_from_its_config(
    pki: PkiSet, redis_server: RedisServer, tmp_path: Path
) -> None:
    """`keys:` in admitd.yaml -> the Keys API on the admin port, behind the caller check."""
    import yaml

    from admitd.config import load_config
    from admitd.runtime import runtime_from_config
    from admitd.server import _start_admin

    redis.Redis.from_url(redis_server.url).flushdb()
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: health\n    match: {path_exact: /healthz}\n    public: true\n"
    )
    keyring = tmp_path / "keyring.json"
    create_keyring_file(keyring, ("kms/session-secrets", "kms/device-telemetry", "kms/audit-log"))
    d, listen = pki.directory, f"127.0.0.1:{free_port()}"
    config = {
        "policies": "p.yaml",
        "redis_url": redis_server.url,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "kms": {"provider": "local", "keyring": str(keyring)},
        "admin": {
            "listen": listen,
            "server_cert": str(d / "server.pem"),
            "server_key": str(d / "server.key"),
            "principals": ["spiffe://test.example/proxy/edge"],
        },
        "keys": {"custodians": {ALICE: "alice@acme", BOB: "bob@acme"}},
    }
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(config))
    runtime = runtime_from_config(load_config(tmp_path / "admitd.yaml", environ={}))
    server = await _start_admin(runtime)
    assert server is not None
    try:
        async with (
            keys_stub(listen, pki, pki.alice) as alice,
            keys_stub(listen, pki, pki.proxy) as login,
        ):
            listed = await alice.ListKeys(pb.ListKeysRequest())
            assert {(v.alias, v.version, v.state) for v in listed.versions} >= {
                (ALIAS, 1, pb.KEY_STATE_ACTIVE)
            }
            error = await refused(lambda: alice.RequestKeyChange(rotate("no-session")))
            assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
            # admin.principals (the login service) is no custodian.
            error = await refused(lambda: login.ListKeys(pb.ListKeysRequest()))
            assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        await server.stop(None)
        await runtime.close()


# --- provider changes: dual control, enforced by `admitd serve` -----------------------------


def provider_of(path: Path) -> ProviderSettings:
    return settings_from_config(config_file(path).kms())


def stored_provider(url: str) -> dict[str, str]:
    sync = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sync.hgetall(PROVIDER_KEY)  # type: ignore[return-value]
    finally:
        sync.close()


async def test_provider_change_is_requested_by_a_and_approved_by_b(
    api: Api, tmp_path: Path
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(
        "kms:\n  provider: pkcs11\n  pkcs11: {module: /opt/hsm/lib.so, token_label: admitd,"
        " pin_env: HSM_PIN}\n  aliases: [kms/session-secrets]\n"
    )
    settings = provider_of(new)
    request = pb.RequestKeyChangeRequest(
        kind=pb.KEY_CHANGE_KIND_PROVIDER, reason="move to the HSM",
        provider_settings=json.dumps(json.loads(settings.canonical()), indent=2),
    )  # fmt: skip
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        request.session_token = await api.step_up("alice@acme")
        change = (await alice.RequestKeyChange(request)).change
        # Computed by admitd from the settings: what the approver reads is what is enforced.
        assert (change.provider_fingerprint, change.provider_summary) == (
            settings.fingerprint,
            settings.summary,
        )
        assert stored_provider(api.url) == {}  # nothing until someone else approves
        a_token = await api.step_up("alice@acme")
        error = await refused(lambda: alice.ApproveKeyChange(approve(change.change_id, a_token)))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        b_token = await api.step_up("bob@acme")
        done = (await bob.ApproveKeyChange(approve(change.change_id, b_token))).change
        assert done.status == pb.KEY_CHANGE_STATUS_APPLIED
        assert settings.fingerprint[:16] in done.result
        listed = await bob.ListKeyChanges(pb.ListKeyChangesRequest())
        assert [c.provider_fingerprint for c in listed.changes] == [settings.fingerprint]
        request.provider_settings = '{"format": 1, "provider": "local"}'
        request.session_token = await api.step_up("alice@acme")
        error = await refused(lambda: alice.RequestKeyChange(request))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    stored = stored_provider(api.url)
    assert (stored["fingerprint"], stored["how"], stored["change_id"]) == (
        settings.fingerprint,
        "approved",
        change.change_id,
    )
    assert api.audit.types("kms.") == [
        "kms.key_change.requested",
        "kms.key_change.refused",
        "kms.key_change.approved",
        "kms.provider.approved",
        "kms.key_change.applied",
        "kms.key_change.refused",
    ]
    approved = dict(api.audit.events)["kms.provider.approved"]
    assert approved["fingerprint"] == settings.fingerprint
    assert (approved["change_id"], approved["previous_fingerprint"]) == (change.change_id, "")
    assert dict(api.audit.events)["kms.key_change.requested"]["provider_summary"] == (
        "provider=pkcs11 module=/opt/hsm/lib.so token_label=admitd"
        " aliases=kms/session-secrets record_patterns=admitd:*"
    )
    assert "HSM_PIN" not in repr(api.audit.events) + repr(stored)


def serve_config(
    tmp_path: Path, pki: PkiSet, name: str, keyring: Path, redis_url: str
) -> tuple[Path, int]:
    """An admitd.yaml with custodians and a local keyring; its Check port."""
    import yaml

    from admitd.kms import DEFAULT_ALIASES

    if not keyring.exists():
        create_keyring_file(keyring, DEFAULT_ALIASES)
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: health\n    match: {path_exact: /healthz}\n    public: true\n"
    )
    d, check = pki.directory, free_port()
    config = {
        "listen": f"127.0.0.1:{check}",
        "metrics_listen": f"127.0.0.1:{free_port()}",
        "policies": "p.yaml",
        "redis_url": redis_url,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "kms": {"provider": "local", "keyring": str(keyring)},
        "admin": {
            "listen": f"127.0.0.1:{free_port()}",
            "server_cert": str(d / "server.pem"),
            "server_key": str(d / "server.key"),
            "principals": [ALICE_AGAIN],
        },
        "keys": {"custodians": {ALICE: "alice@acme", BOB: "bob@acme"}},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path, check


def starts(config: Path, check_port: int, logs: Path) -> str:
    """`admitd serve` comes up (its Check port opens); its log, after a clean stop."""
    with ProcessGroup(logs) as group:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(config)]
        process = group.start("admitd", argv)
        wait_for_port(check_port, process=process)
        group.stop("admitd")
        return group.log_text("admitd")


def refused_to_start(config: Path) -> str:
    argv = [sys.executable, "-m", "admitd", "serve", "--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


async def test_serve_starts_only_with_the_approved_provider(
    api: Api, pki: PkiSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, old_port = serve_config(tmp_path, pki, "old.yaml", tmp_path / "old.json", api.url)
    new, new_port = serve_config(tmp_path, pki, "new.yaml", tmp_path / "new.json", api.url)
    old_fp, new_fp = provider_of(old).fingerprint, provider_of(new).fingerprint
    assert old_fp != new_fp
    # First start of a custodied deployment: its provider is recorded, and it starts.
    log = await asyncio.to_thread(starts, old, old_port, tmp_path / "logs-1")
    assert (stored_provider(api.url)["fingerprint"], stored_provider(api.url)["how"]) == (
        old_fp,
        "first_start",
    )
    assert "kms.provider.recorded" in log and old_fp in log and "first_start" in log
    # Another keyring without an approved change: refused, naming kms and the fix.
    err = await asyncio.to_thread(refused_to_start, new)
    assert "kms" in err and "not the approved one" in err
    assert "request and approve the provider change first: admitd keys request provider" in err
    assert stored_provider(api.url)["fingerprint"] == old_fp
    # Requested by Alice, approved by Bob, with the CLI: then the new one starts...
    tls = []
    for who, leaf in (("alice", api.pki.alice), ("bob", api.pki.bob)):
        cert, key = api.pki.write_leaf(f"provider-{who}", leaf, api.pki.client_ca)
        token = tmp_path / f"{who}.token"
        token.write_text(await api.step_up(f"{who}@acme"))
        tls.append([
            "--address", api.address, "--cert", str(cert), "--key", str(key),
            "--ca", str(api.pki.directory / "root.pem"), "--session-token-file", str(token),
        ])  # fmt: skip
    argv = ["keys", "request", "provider", *tls[0], "--config", str(new), "--reason", "new ring"]
    assert await asyncio.to_thread(main, argv) == 0
    change_id = (await api.custody.changes())[0].change_id
    assert await asyncio.to_thread(main, ["keys", "approve", *tls[1], change_id]) == 0
    assert stored_provider(api.url)["fingerprint"] == new_fp
    await asyncio.to_thread(starts, new, new_port, tmp_path / "logs-2")
    # ...and the old one no longer does.
    assert "not the approved one" in await asyncio.to_thread(refused_to_start, old)
    # With the deployment stopped, an offline accept records the old one again (audited).
    with caplog.at_level(logging.INFO, logger="admitd.audit"):
        accept = ["keys", "provider-accept", "--offline", "--config", str(old)]
        assert await asyncio.to_thread(main, [*accept, "--redis-url", api.url]) == 0
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "admitd.audit"]
    recorded = next(e for e in events if e["event"] == "kms.provider.recorded")
    assert (recorded["mode"], recorded["how"], recorded["command"]) == (
        "offline",
        "offline",
        "keys provider-accept",
    )
    assert (recorded["fingerprint"], recorded["previous_fingerprint"]) == (old_fp, new_fp)
    assert stored_provider(api.url)["how"] == "offline"
    await asyncio.to_thread(starts, old, old_port, tmp_path / "logs-3")


async def test_serve_fails_closed_without_redis(pki: PkiSet, tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    config, _ = serve_config(tmp_path, pki, "admitd.yaml", tmp_path / "ring.json", down)
    err = await asyncio.to_thread(refused_to_start, config)
    assert "cannot read the approved KMS provider from Redis" in err and "kms" in err
