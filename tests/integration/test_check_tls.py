"""The Check listener over mutual TLS (`tls_listen`): `admitd serve` and a real gRPC TLS client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse

from admitd.config import load_config
from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from admitd.errors import ConfigError
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.integration

POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
"""


def health_check() -> CheckRequest:
    request = CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host, http.scheme = "GET", "/healthz", "api.test", "https"
    http.headers.update({"x-forwarded-proto": "https"})
    return request


def write_config(pki: PkiSet, work: Path, port: int, **extra: object) -> Path:
    (work / "p.yaml").write_text(POLICY)
    config = {
        "listen": "",
        "metrics_listen": "",
        "policies": "p.yaml",
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "tls_listen": {
            "address": f"127.0.0.1:{port}",
            "server_cert": str(pki.directory / "server.pem"),
            "server_key": str(pki.directory / "server.key"),
            "client_ca": str(pki.trust_bundle),
        },
        **extra,
    }
    path = work / "admitd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tls_port(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    work = tmp_path_factory.mktemp("check-tls")
    port = free_port()
    config = write_config(pki, work, port)
    with ProcessGroup(work / "logs") as group:
        process = group.start(
            "admitd", [sys.executable, "-m", "admitd", "serve", "--config", str(config)]
        )
        wait_for_port(port, process=process)
        yield port


def call(port: int, credentials: grpc.ChannelCredentials) -> CheckResponse:
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response: CheckResponse = stub.Check(health_check(), timeout=5)
        return response


def test_a_caller_with_a_certificate_from_the_client_ca_gets_answers(
    tls_port: int, pki: PkiSet
) -> None:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki.directory / "root.pem").read_bytes(),
        private_key=pki.proxy.key_pem,
        certificate_chain=pki.proxy.cert_pem + pki.client_ca.cert_pem,
    )
    assert call(tls_port, credentials).HasField("ok_response")


def test_a_caller_without_a_certificate_is_refused_at_the_handshake(
    tls_port: int, pki: PkiSet
) -> None:
    credentials = grpc.ssl_channel_credentials((pki.directory / "root.pem").read_bytes())
    with pytest.raises(grpc.RpcError) as failure:
        call(tls_port, credentials)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(tls_port: int, pki: PkiSet) -> None:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(pki.directory / "root.pem").read_bytes(),
        private_key=pki.untrusted.key_pem,
        certificate_chain=pki.untrusted.cert_pem,
    )
    with pytest.raises(grpc.RpcError) as failure:
        call(tls_port, credentials)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE


def test_plaintext_to_the_tls_port_gets_nothing(tls_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Check(health_check(), timeout=5)
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_key_that_does_not_match_the_certificate_is_a_config_error(
    pki: PkiSet, tmp_path: Path
) -> None:
    other_key = tmp_path / "other.key"
    other_key.write_bytes(pki.alice.key_pem)
    path = write_config(pki, tmp_path, 1)
    document = yaml.safe_load(path.read_text())
    document["tls_listen"]["server_key"] = str(other_key)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"tls_listen\.server_key.*not the private key"):
        load_config(path, environ={})


def test_turning_off_every_check_listener_is_a_config_error(pki: PkiSet, tmp_path: Path) -> None:
    path = write_config(pki, tmp_path, 1)
    document = yaml.safe_load(path.read_text())
    del document["tls_listen"]
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"listen.*nothing would serve Check"):
        load_config(path, environ={})
