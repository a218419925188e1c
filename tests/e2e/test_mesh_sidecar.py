"""envoy/sidecar.yaml as committed, run by the real Envoy, with admitd in mesh mode on a
Unix socket: Envoy verifies the client certificate itself, admitd trusts what it verified
only because it asked over admitd's socket, and still applies the route and deny list."""

from __future__ import annotations

import http.client
import json
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

from admitd.certs.revocation import append_deny_entry
from admitd.devstack.processes import ProcessGroup, envoy_binary, free_port, wait_for_port
from admitd.pki import issue_leaf
from tests.e2e.stack import envoy_command
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e

SIDECAR = Path(__file__).resolve().parents[2] / "envoy" / "sidecar.yaml"
ALICE = "spiffe://test.example/user/alice"
POLICY = """
routes:
  - name: payroll
    match: {path_prefix: /payroll/}
    identities:
      spiffe: ["spiffe://test.example/user/alice"]
  - name: workloads
    match: {path_prefix: /}
    identities:
      spiffe: ["spiffe://test.example/user/*"]
"""


@dataclass
class Sidecar:
    port: int
    socket: Path
    tls_port: int
    deny_list: Path
    work: Path
    pki: PkiSet
    group: ProcessGroup

    def get(
        self, path: str, cert: tuple[Path, Path], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        context = ssl.create_default_context(cafile=str(self.pki.directory / "root.pem"))
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        connection = http.client.HTTPSConnection(
            "localhost", self.port, context=context, timeout=10
        )
        try:
            connection.request("GET", path, headers=headers or {})
            reply = connection.getresponse()
            body = reply.read()
            return reply.status, json.loads(body) if body.startswith(b"{") else {}
        finally:
            connection.close()


def render_sidecar(replacements: dict[object, object]) -> dict[str, Any]:
    """The committed file with its paths, ports and trust domain swapped for the test's."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return replacements.get(node, node)

    config: dict[str, Any] = walk(yaml.safe_load(SIDECAR.read_text()))
    return config


@pytest.fixture(scope="module")
def sidecar(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    work = tmp_path_factory.mktemp("sidecar")
    ports = {name: free_port() for name in ("inbound", "admin", "workload", "tls", "metrics")}
    socket = work / "check.sock"
    deny_list = work / "deny.txt"
    deny_list.write_text("")
    (work / "policies.yaml").write_text(POLICY)
    (work / "mesh-ca.pem").write_bytes(pki.trust_bundle.read_bytes())
    (work / "admitd.yaml").write_text(
        yaml.safe_dump(
            {
                "listen": f"unix://{socket}",
                "metrics_listen": f"127.0.0.1:{ports['metrics']}",
                "policies": "policies.yaml",
                "tls": {
                    "trust_bundle": str(pki.trust_bundle),
                    "deny_list": str(deny_list),
                    "revocation_poll_seconds": 0.2,
                },
                # A second listener that any local process could reach over TCP: it is
                # not a named caller, so (mesh.unnamed_callers: refuse) neither a principal
                # nor a certificate it sends gives anyone an identity.
                "tls_listen": {
                    "address": f"127.0.0.1:{ports['tls']}",
                    "server_cert": str(pki.directory / "server.pem"),
                    "server_key": str(pki.directory / "server.key"),
                    "client_ca": str(pki.trust_bundle),
                },
                "mesh": {
                    "trust_domains": ["test.example"],
                    "callers": [{"name": "sidecar", "unix_socket": True}],
                },
            }
        )
    )
    envoy_config = render_sidecar(
        {
            15006: ports["inbound"],
            "0.0.0.0": "127.0.0.1",
            15000: ports["admin"],
            8080: ports["workload"],
            "/run/admitd/check.sock": str(socket),
            "/etc/admitd/mesh/workload.pem": str(pki.directory / "server.pem"),
            "/etc/admitd/mesh/workload.key": str(pki.directory / "server.key"),
            "/etc/admitd/mesh/mesh-ca.pem": str(work / "mesh-ca.pem"),
            "spiffe://cluster.local/": "spiffe://test.example/",
        }
    )
    (work / "envoy.yaml").write_text(yaml.safe_dump(envoy_config))
    with ProcessGroup(work / "logs") as group:
        workload = group.start(
            "workload",
            [sys.executable, "-m", "admitd.devstack.echo", "--port", str(ports["workload"])],
        )
        admitd = group.start(
            "admitd",
            [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")],
        )
        wait_for_port(ports["tls"], process=admitd)
        envoy = group.start("envoy", envoy_command(work / "envoy.yaml", ports["admin"]))
        wait_for_port(ports["workload"], process=workload)
        wait_for_port(ports["inbound"], process=envoy)
        yield Sidecar(ports["inbound"], socket, ports["tls"], deny_list, work, pki, group)


def test_the_committed_sidecar_config_validates(pki: PkiSet, tmp_path: Path) -> None:
    socket = tmp_path / "check.sock"
    config = render_sidecar(
        {
            "/run/admitd/check.sock": str(socket),
            "/etc/admitd/mesh/workload.pem": str(pki.directory / "server.pem"),
            "/etc/admitd/mesh/workload.key": str(pki.directory / "server.key"),
            "/etc/admitd/mesh/mesh-ca.pem": str(pki.trust_bundle),
        }
    )
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    authz = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = authz["typed_config"]["http_filters"][0]["typed_config"]
    assert filters["failure_mode_allow"] is False and filters["include_peer_certificate"]
    assert filters["status_on_error"] == {"code": "ServiceUnavailable"}
    assert authz["typed_config"]["forward_client_cert_details"] == "SANITIZE_SET"


def test_a_verified_workload_is_admitted_as_itself(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]]
) -> None:
    status, echoed = sidecar.get("/payroll/run", certs["alice"])
    assert status == 200
    assert echoed["headers"]["x-admitd-principal"] == ALICE
    assert echoed["headers"]["x-admitd-route"] == "payroll"
    assert len(echoed["headers"]["x-admitd-cert-sha256"]) == 64  # the certificate was at hand


def test_a_workload_the_route_does_not_allow_is_refused(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]]
) -> None:
    status, body = sidecar.get("/payroll/run", certs["bob"])
    assert (status, body["error"]["reason"]) == (495, "identity_not_allowed")
    assert sidecar.get("/inventory", certs["bob"])[0] == 200


def test_a_spoofed_xfcc_from_the_client_is_refused(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]], pki: PkiSet
) -> None:
    # Bob claims to be alice in the header a trusting upstream would read: Envoy drops it
    # (SANITIZE_SET) and admitd reads only what Envoy verified.
    forged = f"By=spiffe://test.example/payroll;URI={ALICE}"
    status, body = sidecar.get("/payroll/run", certs["bob"], {"x-forwarded-client-cert": forged})
    assert (status, body["error"]["reason"]) == (495, "identity_not_allowed")
    status, echoed = sidecar.get("/inventory", certs["bob"], {"x-forwarded-client-cert": forged})
    assert status == 200 and echoed["headers"]["x-admitd-principal"] != ALICE
    assert ALICE not in echoed["headers"].get("x-forwarded-client-cert", "")


def test_another_trust_domain_never_completes_the_handshake(sidecar: Sidecar, pki: PkiSet) -> None:
    outsider = issue_leaf(pki.client_ca, "outsider", uris=("spiffe://other.example/user/alice",))
    cert = pki.write_leaf("outsider", outsider, pki.client_ca)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        sidecar.get("/inventory", cert)


def test_no_client_certificate_no_connection(sidecar: Sidecar, pki: PkiSet) -> None:
    context = ssl.create_default_context(cafile=str(pki.directory / "root.pem"))
    connection = http.client.HTTPSConnection("localhost", sidecar.port, context=context, timeout=5)
    with pytest.raises(
        (ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.HTTPException)
    ):
        connection.request("GET", "/inventory")
        connection.getresponse()
    connection.close()


def test_a_spiffe_id_on_the_deny_list_is_refused_without_restart(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]], pki: PkiSet
) -> None:
    carol = issue_leaf(pki.client_ca, "carol", uris=("spiffe://test.example/user/carol",))
    cert = pki.write_leaf("carol", carol, pki.client_ca)
    assert sidecar.get("/inventory", cert)[0] == 200
    append_deny_entry(sidecar.deny_list, spiffe_id="spiffe://test.example/user/carol")
    deadline = time.monotonic() + 10
    while sidecar.get("/inventory", cert)[0] != 495 and time.monotonic() < deadline:
        time.sleep(0.1)
    status, body = sidecar.get("/inventory", cert)
    assert (status, body["error"]["reason"]) == (495, "revoked")
    assert sidecar.get("/inventory", certs["bob"])[0] == 200


def _forged_check() -> CheckRequest:
    request = CheckRequest()
    http_request = request.attributes.request.http
    http_request.method, http_request.path, http_request.host = "GET", "/payroll/run", "localhost"
    http_request.scheme = "https"
    http_request.headers.update({"x-forwarded-proto": "https"})
    request.attributes.source.principal = ALICE
    return request


def test_only_the_socket_makes_a_trusted_caller(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]], pki: PkiSet
) -> None:
    mode = stat.S_IMODE(sidecar.socket.stat().st_mode)
    assert mode == 0o660  # only the pod's (or host group's) processes open it
    bob = certs["bob"]
    credentials = grpc.ssl_channel_credentials(
        (pki.directory / "root.pem").read_bytes(), bob[1].read_bytes(), bob[0].read_bytes()
    )
    with grpc.secure_channel(f"localhost:{sidecar.tls_port}", credentials) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        over_tcp = stub.Check(_forged_check(), timeout=5)
    assert over_tcp.denied_response.status.code == 495  # no certificate: alice is not believed
    with grpc.insecure_channel(f"unix://{sidecar.socket}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        over_socket = stub.Check(_forged_check(), timeout=5)
    assert over_socket.HasField("ok_response")  # whoever can open the socket is trusted


def test_without_admitd_the_sidecar_refuses_with_503(
    sidecar: Sidecar, certs: dict[str, tuple[Path, Path]]
) -> None:
    # Last in this module: it stops admitd. Envoy fails closed (failure_mode_allow: false).
    sidecar.group.stop("admitd")
    assert not sidecar.socket.exists()  # removed on stop, so no stale socket is left behind
    assert sidecar.get("/inventory", certs["alice"])[0] == 503
