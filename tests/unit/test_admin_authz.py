"""Admin API authorisation by client-certificate identity, error mapping, and `admin:` config."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from admitd._proto import sessions_pb2 as pb
from admitd.admin.authz import authorized_principal, peer_names
from admitd.admin.config import SECTION_KEYS, AdminConfig, admin_config_from_fields
from admitd.admin.errors import InvalidRequest, PreconditionFailed, SessionNotFound
from admitd.admin.servicer import SERVICE_NAME, AdminApi, admin_handler
from admitd.errors import ConfigError, EnvelopeError, StoreUnavailable
from admitd.fields import Fields
from admitd.pki import Issued
from admitd.yamlsource import yaml_document_from_text
from tests.pki_fixtures import PkiSet

ALICE = "spiffe://test.example/user/alice"


def context_of(issued: Issued | None) -> dict[str, list[bytes]]:
    """What grpc's `context.auth_context()` holds for an mTLS peer (or for none)."""
    base = {"transport_security_type": [b"ssl"]}
    return base if issued is None else {**base, "x509_pem_cert": [issued.cert_pem]}


def test_peer_names_are_uris_dns_and_subject(pki: PkiSet) -> None:
    assert peer_names(context_of(pki.alice)) == {
        ALICE,
        "alice.clients.test",
        "CN=alice,O=admitd dev",
    }


@pytest.mark.parametrize(
    "principal", [ALICE, "alice.clients.test", "CN=alice,O=admitd dev"], ids=["uri", "dns", "dn"]
)
def test_any_identity_of_the_peer_may_be_listed(pki: PkiSet, principal: str) -> None:
    assert authorized_principal(context_of(pki.alice), {principal}) == principal


def test_other_peers_are_not_authorised(pki: PkiSet) -> None:
    assert authorized_principal(context_of(pki.bob), {ALICE}) is None
    assert authorized_principal(context_of(None), {ALICE}) is None
    assert authorized_principal({"x509_pem_cert": [b"not a certificate"]}, {ALICE}) is None


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class FakeContext:
    """The two things the guard uses from a grpc.aio.ServicerContext."""

    def __init__(self, auth: dict[str, list[bytes]]) -> None:
        self._auth = auth

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class RevokingAdmin:
    """The one `SessionAdmin` method `RevokeUserSessions` calls: counts, or fails with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    async def revoke_user(self, user_id: str) -> int:
        self.calls.append(user_id)
        if self.error is not None:
            raise self.error
        return 2


class MethodCall:
    """What grpc hands a generic handler to find the method (`HandlerCallDetails`)."""

    def __init__(self, name: str) -> None:
        self.method = f"/{SERVICE_NAME}/{name}"
        self.invocation_metadata = ()


def revoke_user_sessions(admin: RevokingAdmin) -> Callable[..., Awaitable[object]]:
    """`RevokeUserSessions` as the admin server runs it, open to ALICE only."""
    handler = admin_handler(AdminApi(admin), {ALICE})  # type: ignore[arg-type]
    method = handler.service(MethodCall("RevokeUserSessions"))  # type: ignore[arg-type]
    assert method is not None and method.unary_unary is not None
    return method.unary_unary


async def test_unlisted_callers_are_denied_before_the_rpc_runs(pki: PkiSet) -> None:
    admin = RevokingAdmin()
    handle = revoke_user_sessions(admin)
    request = pb.RevokeUserSessionsRequest(user_id="u")
    with pytest.raises(Aborted) as denied:
        await handle(request, FakeContext(context_of(pki.bob)))
    assert denied.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert admin.calls == []
    response = await handle(request, FakeContext(context_of(pki.alice)))
    assert response == pb.RevokeUserSessionsResponse(revoked=2)
    assert admin.calls == ["u"]


@pytest.mark.parametrize(
    ("error", "status", "details"),
    [
        (InvalidRequest("bad user_id"), grpc.StatusCode.INVALID_ARGUMENT, "bad user_id"),
        (PreconditionFailed("enrol"), grpc.StatusCode.FAILED_PRECONDITION, "enrol"),
        (SessionNotFound("gone"), grpc.StatusCode.NOT_FOUND, "gone"),
        (StoreUnavailable("get: Conn"), grpc.StatusCode.UNAVAILABLE, "session store unavailable"),
        (EnvelopeError("k"), grpc.StatusCode.INTERNAL, "admitd failed; details are in its log"),
        (ValueError("secret"), grpc.StatusCode.INTERNAL, "admitd failed; details are in its log"),
    ],
    ids=["invalid", "precondition", "not-found", "store", "envelope", "bug"],
)
async def test_every_failure_maps_to_a_deliberate_status(
    pki: PkiSet, error: Exception, status: grpc.StatusCode, details: str
) -> None:
    handle = revoke_user_sessions(RevokingAdmin(error))
    with pytest.raises(Aborted) as aborted:
        await handle(pb.RevokeUserSessionsRequest(user_id="u"), FakeContext(context_of(pki.alice)))
    assert (aborted.value.code, aborted.value.details) == (status, details)


def fields_of(text: str, file: str) -> Fields:
    doc = yaml_document_from_text(text, file)
    assert isinstance(doc.data, dict)
    return Fields(doc, ("admin",), doc.data.get("admin"), SECTION_KEYS)


def test_no_admin_section_means_no_admin_api(tmp_path: Path) -> None:
    assert admin_config_from_fields(fields_of("listen: x\n", str(tmp_path / "a.yaml"))) is None


def test_admin_config_resolves_paths_and_normalises_subjects(pki: PkiSet, tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "admin.pem").write_bytes((pki.directory / "server.pem").read_bytes())
    (tmp_path / "tls" / "admin.key").write_bytes((pki.directory / "server.key").read_bytes())
    text = (
        "admin:\n  server_cert: tls/admin.pem\n  server_key: tls/admin.key\n"
        "  principals: ['spiffe://x/login', 'login.internal', 'CN=ops, O=Example']\n"
    )
    config = admin_config_from_fields(fields_of(text, str(tmp_path / "admitd.yaml")))
    assert config == AdminConfig(
        server_cert=tmp_path / "tls" / "admin.pem",
        server_key=tmp_path / "tls" / "admin.key",
        principals=frozenset({"spiffe://x/login", "login.internal", "CN=ops,O=Example"}),
        listen="127.0.0.1:9443",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin:\n  server_cert: c\n  server_key: k\n", r"admin.principals: the admin API needs"),
        ("admin:\n  principals: [a]\n  server_key: k\n", r"admin.server_cert: required"),
        ("admin:\n  principals: [a]\n  server_cert: nope\n  server_key: k\n", r"does not exist"),
        (
            "admin:\n  principals: [a]\n  server_cert: c\n  server_key: k\n  listen: 9443\n",
            r"admin.listen: expected a non-empty string",
        ),
        (
            "admin:\n  principals: [a]\n  server_cert: c\n  server_key: k\n  listen: 'x:y'\n",
            r"admin.listen: expected HOST:PORT",
        ),
        ("admin:\n  principals: ['CN=a,=b']\n  server_cert: c\n  server_key: k\n", r"RFC 4514"),
        ("admin:\n  port: 1\n", r"admin.port: unknown key"),
    ],
    ids=["no-principals", "no-cert", "missing-file", "int-listen", "bad-listen", "bad-dn", "key"],
)
def test_admin_config_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c").write_text("cert")
    (tmp_path / "k").write_text("key")
    with pytest.raises(ConfigError, match=message):
        admin_config_from_fields(fields_of(text, str(tmp_path / "admitd.yaml")))
