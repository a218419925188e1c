"""`admitd serve` with its IdPs unreachable at start: it serves, says so, and recovers.

The OIDC issuer is a closed loopback port until the real test IdP starts on it; the JWT
issuer's port never opens. Everything goes through the real server's ports: gRPC Check,
the web app (sign-in), /metrics.
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse
from prometheus_client.parser import text_string_to_metric_families

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from admitd.oidc.provider import _RETRY_SECONDS
from admitd.oidc.state import STATE_COOKIE
from tests.idp.harness import CLIENT_ID, CLIENT_SECRET, has_node, start_idp
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.jwt_tokens import Idp as TokenSigner

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_node(), reason="node/npm not installed (the test IdP)"),
]

HOST = "admitd.test"  # the harness's default redirect URI is on this host
SESSION_COOKIE = "__Host-admitd_session"
POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: service
    match: {path_prefix: /api/}
    identities: any
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
"""


@dataclass
class Admitd:
    group: ProcessGroup
    check_port: int
    web_port: int
    metrics_port: int
    oidc_issuer: str
    jwt_issuer: str
    work: Path


@pytest.fixture(scope="module")
def admitd(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admitd]:
    work = tmp_path_factory.mktemp("idp-unreachable")
    ports = {name: free_port() for name in ("check", "web", "metrics", "oidc", "jwt")}
    (work / "p.yaml").write_text(POLICY)
    for name, content in (("web.key", "k" * 32), ("client.secret", CLIENT_SECRET)):
        (work / name).write_text(content)
        (work / name).chmod(0o600)
    oidc_issuer, jwt_issuer = (f"http://127.0.0.1:{ports[n]}" for n in ("oidc", "jwt"))
    config = {
        "listen": f"127.0.0.1:{ports['check']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": "p.yaml",
        "dev_mode": True,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "web": {
            "listen": f"127.0.0.1:{ports['web']}",
            "signing_key_file": "web.key",
            "rp_id": HOST,
            "origins": [f"https://{HOST}"],
        },
        "oidc": {
            "issuer": oidc_issuer,
            "client_id": CLIENT_ID,
            "client_secret_file": "client.secret",
            "organisation_claim": "org",
            "roles_claim": "groups",
        },
        "jwt": {"issuers": [{"issuer": jwt_issuer, "audiences": ["https://api.test"]}]},
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    with ProcessGroup(work / "logs") as group:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")]
        process = group.start("admitd", argv)
        wait_for_port(ports["check"], process=process)
        wait_for_port(ports["web"], process=process)
        yield Admitd(
            group,
            ports["check"],
            ports["web"],
            ports["metrics"],
            oidc_issuer,
            jwt_issuer,
            work,
        )


def check(admitd: Admitd, path: str, cert: str = "", **headers: str) -> CheckResponse:
    request = CheckRequest()
    request.attributes.source.address.socket_address.address = "203.0.113.7"
    request.attributes.source.certificate = cert
    http_request = request.attributes.request.http
    http_request.method, http_request.path, http_request.host = "GET", path, "api.test"
    http_request.scheme = "https"
    http_request.headers.update({"x-forwarded-proto": "https", **headers})
    with grpc.insecure_channel(f"127.0.0.1:{admitd.check_port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response: CheckResponse = stub.Check(request, timeout=10)
        return response


@dataclass
class Reply:
    status: int
    headers: Message
    body: str


def web_get(admitd: Admitd, path: str, cookie: str = "") -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", admitd.web_port, timeout=10)
    try:
        connection.request(
            "GET", path, headers={"Host": HOST, **({"Cookie": cookie} if cookie else {})}
        )
        reply = connection.getresponse()
        return Reply(reply.status, reply.headers, reply.read().decode(errors="replace"))
    finally:
        connection.close()


def cookie_from(reply: Reply, name: str) -> str:
    for header in reply.headers.get_all("Set-Cookie") or []:
        key, _, rest = header.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie in {reply.headers.get_all('Set-Cookie')}")


def counter(admitd: Admitd, name: str, **labels: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", admitd.metrics_port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def wait_for_log(admitd: Admitd, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := admitd.group.log_text("admitd")):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never logged; log:\n{log[-3000:]}")
        time.sleep(0.1)
    return log


def test_admitd_starts_says_so_and_serves_other_routes(admitd: Admitd, pki: PkiSet) -> None:
    log = wait_for_log(admitd, f"identity provider {admitd.oidc_issuer} unavailable at start")
    assert f"jwks for {admitd.jwt_issuer} unavailable" in log
    assert "Traceback" not in log
    assert check(admitd, "/healthz").HasField("ok_response")
    assert check(admitd, "/api/items", url_pem(pki.alice)).HasField("ok_response")
    assert check(admitd, "/api/items").denied_response.status.code == 495  # no certificate


def test_a_jwt_route_whose_jwks_is_unreachable_answers_503(admitd: Admitd, pki: PkiSet) -> None:
    token = TokenSigner().token(iss=admitd.jwt_issuer, exp=int(time.time()) + 300)
    response = check(admitd, "/reports/q3", url_pem(pki.alice), authorization=f"Bearer {token}")
    assert response.denied_response.status.code == 503
    assert '"identity_provider_unavailable"' in response.denied_response.body
    assert check(admitd, "/api/items", url_pem(pki.alice)).HasField("ok_response")
    jwt_errors = counter(
        admitd, "admitd_jwks_fetches_total", issuer=admitd.jwt_issuer, outcome="error"
    )
    assert jwt_errors >= 1.0


def test_sign_in_answers_503_until_the_idp_is_up_then_works(
    admitd: Admitd, pki: PkiSet, tmp_path: Path
) -> None:
    down = web_get(admitd, "/.admitd/oidc/start")
    assert (down.status, down.headers.get_content_type()) == (503, "text/html")
    assert "<html" in down.body.lower() and "Traceback" not in down.body
    assert counter(admitd, "admitd_oidc_discovery_total", outcome="error") >= 1.0
    assert counter(admitd, "admitd_oidc_discovery_total", outcome="ok") == 0.0

    port = int(admitd.oidc_issuer.rsplit(":", 1)[1])
    with start_idp(tmp_path / "idp", port=port) as idp:
        assert idp.issuer == admitd.oidc_issuer
        deadline = time.monotonic() + _RETRY_SECONDS + 5
        while (started := web_get(admitd, "/.admitd/oidc/start")).status == 503:
            assert time.monotonic() < deadline, "discovery was not retried"
            time.sleep(0.25)
        assert started.status == 302
        location = started.headers["Location"]
        assert location.startswith(idp.discovery()["authorization_endpoint"] + "?")
        callback = urlsplit(idp.sign_in(location, "alice"))
        state = cookie_from(started, STATE_COOKIE)
        back = web_get(admitd, f"{callback.path}?{callback.query}", f"{STATE_COOKIE}={state}")
        assert back.status == 303, admitd.group.log_text("admitd")[-2000:]
        session = cookie_from(back, SESSION_COOKIE)

    # The session is admitd's own: it holds with the IdP gone again.
    cookie = f"{SESSION_COOKIE}={session}"
    assert check(admitd, "/reports/q3", url_pem(pki.alice), cookie=cookie).HasField("ok_response")
    assert counter(admitd, "admitd_oidc_discovery_total", outcome="ok") == 1.0
    oidc_keys = {"issuer": admitd.oidc_issuer, "outcome": "ok"}
    assert counter(admitd, "admitd_jwks_fetches_total", **oidc_keys) == 1.0
