"""`admitd serve` for real: `admitd revoke` locks a certificate out of Envoy and the admin API.

One running process, no restart: the same deny-list entry turns the certificate's
next request through Envoy into a 495 `revoked` and its next admin-API call into
UNAUTHENTICATED, on an admin connection that was opened before the revocation.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from admitd._proto import sessions_pb2, sessions_pb2_grpc
from admitd.devstack.processes import free_port, wait_for_port
from admitd.pki import issue_leaf
from tests.conftest import POLICY
from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e

ADMIN = "spiffe://test.example/user/ops"  # POLICY admits it on /api/ too
LIST = sessions_pb2.ListUserSessionsRequest(user_id="u-1")


@pytest.fixture(scope="module")
def admin_edge(
    pki: PkiSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EdgeStack, str]]:
    work = tmp_path_factory.mktemp("admin-edge")
    (work / "policies.yaml").write_text(POLICY)
    admin_listen = f"127.0.0.1:{free_port()}"
    extra = {
        "dev_mode": True,  # dev KMS: the admin API needs sealed second factors
        "admin": {
            "listen": admin_listen,
            "server_cert": str(pki.directory / "server.pem"),
            "server_key": str(pki.directory / "server.key"),
            "principals": [ADMIN],
        },
    }
    stack = start_edge(pki, work / "policies.yaml", work, extra_config=extra)
    wait_for_port(int(admin_listen.rpartition(":")[2]))
    yield stack, admin_listen
    stack.group.stop_all()


async def _admin_calls(
    address: str, pki: PkiSet, cert_pem: bytes, key_pem: bytes, revoke: object
) -> tuple[grpc.StatusCode, grpc.StatusCode, str]:
    root = (pki.directory / "root.pem").read_bytes()
    credentials = grpc.ssl_channel_credentials(root, key_pem, cert_pem + pki.client_ca.cert_pem)
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = sessions_pb2_grpc.SessionsStub(channel)
        await stub.ListUserSessions(LIST, timeout=5)
        before = grpc.StatusCode.OK
        await asyncio.to_thread(revoke)  # type: ignore[arg-type]
        try:
            await stub.ListUserSessions(LIST, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return before, exc.code(), exc.details() or ""
        return before, grpc.StatusCode.OK, ""


def test_admitd_revoke_applies_to_envoy_and_the_admin_api(
    admin_edge: tuple[EdgeStack, str], pki: PkiSet
) -> None:
    edge, admin_listen = admin_edge
    ops = issue_leaf(pki.client_ca, "ops", uris=(ADMIN,))
    cert, key = pki.write_leaf("ops-admin", ops, pki.client_ca)
    assert edge.get("/api/items", cert=(cert, key)).status == 200

    def revoke() -> None:
        argv = [sys.executable, "-m", "admitd", "revoke", "--deny-list", str(edge.deny_list)]
        subprocess.run([*argv, "--cert", str(cert)], check=True, capture_output=True)
        time.sleep(1.0)  # tls.revocation_poll_seconds is 0.2 in the test stack

    before, after, details = asyncio.run(
        _admin_calls(admin_listen, pki, ops.cert_pem, ops.key_pem, revoke)
    )
    assert before is grpc.StatusCode.OK
    assert after is grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in details
    reply = edge.get("/api/items", cert=(cert, key))
    assert reply.status == 495 and reply.json()["error"]["reason"] == "revoked"  # type: ignore[index]
