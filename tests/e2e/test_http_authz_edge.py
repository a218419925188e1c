"""Envoy 1.40's HTTP ext_authz (`http_service`) to admitd's `http_listen`, for real.

The edge is envoy/edge-http.yaml's (admitd.devstack.envoy_http_config): XFCC set by
Envoy with SANITIZE_SET carries the peer certificate, admitd answers over HTTP/1.1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from admitd.devstack.envoy_config import EdgeSettings
from admitd.devstack.envoy_http_config import with_http_authz
from admitd.devstack.processes import free_port, wait_for_port
from tests.e2e.stack import EdgeStack, Response, start_edge
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet, url_pem
from tests.redis_sessions import create_session

pytestmark = pytest.mark.e2e
Certs = dict[str, tuple[Path, Path]]
ACCESS_FORMAT = (
    "%REQ(:PATH)% %RESPONSE_CODE% risk=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:"
    "x-admitd-risk-level)% signals=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:"
    "x-admitd-risk-signals)%\n"
)


def start_http_edge(
    pki: PkiSet, policies: Path, work: Path, **kwargs: Any
) -> tuple[EdgeStack, Path]:
    """start_edge with admitd's http_listen on and Envoy asking it over HTTP; the access
    log records ext_authz's dynamic metadata."""
    http_port = free_port()
    access_log = work / "access.log"

    def over_http(bootstrap: dict[str, Any]) -> None:
        settings = EdgeSettings(
            listen_port=0,
            admin_port=0,
            authz_port=http_port,
            upstream_port=0,
            server_cert=Path(),
            server_key=Path(),
            trust_bundle=Path(),
        )
        bootstrap.update(with_http_authz(bootstrap, settings))
        listener = bootstrap["static_resources"]["listeners"][0]
        manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
        manager["access_log"] = [_access_log(access_log)]

    extra = {"http_listen": f"127.0.0.1:{http_port}", **kwargs.pop("extra_config", {})}
    stack = start_edge(pki, policies, work, extra_config=extra, envoy_config=over_http, **kwargs)
    wait_for_port(http_port)
    return stack, access_log


def _access_log(path: Path) -> dict[str, Any]:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(path),
            "log_format": {"text_format_source": {"inline_string": ACCESS_FORMAT}},
        },
    }


def access_lines(path: Path, count: int) -> list[str]:
    """Envoy flushes its access log on its own schedule (about a second)."""
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def upstream_saw(reply: Response) -> dict[str, str]:
    assert reply.status == 200, reply.body[:300]
    headers: dict[str, str] = json.loads(reply.body)["headers"]
    return headers


@pytest.fixture(scope="module")
def edge(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    from tests.conftest import POLICY

    work = tmp_path_factory.mktemp("http-edge")
    (work / "policies.yaml").write_text(POLICY)
    stack, _ = start_http_edge(pki, work / "policies.yaml", work)
    yield stack
    stack.group.stop_all()


def test_an_allowed_certificate_reaches_the_upstream_with_admitd_headers(
    edge: EdgeStack, certs: Certs, pki: PkiSet
) -> None:
    seen = upstream_saw(edge.get("/api/items", cert=certs["alice"]))
    assert seen["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert seen["x-admitd-cert-sha256"] == pki.alice.cert.fingerprint(hashes.SHA256()).hex()
    assert seen["x-admitd-route"] == "api"
    # Envoy's own headers to admitd never reach the upstream.
    assert "x-admitd-source-address" not in seen and "x-admitd-check-timeout-ms" not in seen


def test_a_missing_certificate_is_admitds_495_json(edge: EdgeStack) -> None:
    reply = edge.get("/api/items")
    assert reply.status == 495 and reply.headers["x-admitd-reason"] == "missing"
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == {
        "code": "client_certificate_required",
        "reason": "missing",
        "message": "This route requires a client certificate.",
    }


@pytest.mark.parametrize(
    ("name", "path", "reason"),
    [
        ("expired", "/api/items", "expired"),
        ("untrusted", "/api/items", "untrusted"),
        ("revoked", "/api/items", "revoked"),
        ("bob", "/admin/users", "identity_not_allowed"),
    ],
)
def test_a_refused_certificate_is_495_with_its_reason(
    edge: EdgeStack, certs: Certs, name: str, path: str, reason: str
) -> None:
    reply = edge.get(path, cert=certs[name])
    assert reply.status == 495 and reply.headers["x-admitd-reason"] == reason
    assert reply.json()["error"]["code"] == "client_certificate_invalid"  # type: ignore[index]


def test_forged_admitd_headers_from_the_client_never_reach_the_upstream(
    edge: EdgeStack, certs: Certs
) -> None:
    forged = {
        "x-admitd-principal": "spiffe://test.example/user/root",
        "x-admitd-user": "root",
        "x-admitd-source-address": "10.9.9.9",
        "x-client-cert": "forged",
    }
    seen = upstream_saw(edge.get("/api/items", cert=certs["alice"], headers=forged))
    assert seen["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert {"x-admitd-user", "x-admitd-source-address", "x-client-cert"}.isdisjoint(seen)


def test_a_client_supplied_xfcc_is_never_believed(
    edge: EdgeStack, certs: Certs, pki: PkiSet
) -> None:
    claim = {"x-forwarded-client-cert": f'Hash=00;Cert="{url_pem(pki.alice)}";URI=x'}
    # Without a TLS certificate: Envoy drops the header, so there is no certificate at all.
    reply = edge.get("/api/items", headers=claim)
    assert reply.status == 495 and reply.headers["x-admitd-reason"] == "missing"
    # With bob's: admitd judges bob, whose identity the admin route does not allow.
    reply = edge.get("/admin/users", cert=certs["bob"], headers=claim)
    assert reply.status == 495 and reply.headers["x-admitd-reason"] == "identity_not_allowed"


def test_a_browser_gets_the_html_page_with_its_security_headers(edge: EdgeStack) -> None:
    browser = {"accept": "text/html", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
    reply = edge.get("/api/items", headers=browser)
    assert reply.status == 495 and reply.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["x-frame-options"] == "DENY"
    assert b"Certificate required" in reply.body


def test_head_and_a_chunked_upload_keep_envoys_connection_in_step(
    edge: EdgeStack, certs: Certs
) -> None:
    assert edge.get("/api/items", method="HEAD").status == 495
    upload = edge.get(
        "/api/items", cert=certs["alice"], method="POST", headers={"transfer-encoding": "chunked"}
    )
    assert upload.status == 200
    assert edge.get("/api/items", cert=certs["alice"]).status == 200  # the same pool, reused


def test_a_stopped_admitd_fails_closed_with_503(pki: PkiSet, certs: Certs, tmp_path: Path) -> None:
    from tests.conftest import POLICY

    (tmp_path / "policies.yaml").write_text(POLICY)
    stack, _ = start_http_edge(pki, tmp_path / "policies.yaml", tmp_path)
    try:
        assert stack.get("/api/items", cert=certs["alice"]).status == 200
        stack.stop_admitd()
        reply = stack.get("/api/items", cert=certs["alice"])
        assert reply.status == 503 and b"x-admitd" not in reply.body
    finally:
        stack.group.stop_all()


RISK_POLICY = """
routes:
  - name: app
    match: {path_prefix: /app/}
    identities: any
    session: required
"""


@pytest.fixture(scope="module")
def risk_edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EdgeStack, Path]]:
    work = tmp_path_factory.mktemp("http-risk-edge")
    (work / "policies.yaml").write_text(RISK_POLICY)
    (work / "blocklist.txt").write_text("127.0.0.1/32 ; SBL-test\n")
    extra = {"dev_mode": True, "risk": {"reputation_files": [str(work / "blocklist.txt")]}}
    stack, access_log = start_http_edge(
        pki, work / "policies.yaml", work, redis_url=redis_server.url, extra_config=extra
    )
    yield stack, access_log
    stack.group.stop_all()


def test_risk_reaches_the_client_and_envoys_dynamic_metadata(
    risk_edge: tuple[EdgeStack, Path], redis_server: RedisServer, pki: PkiSet
) -> None:
    stack, access_log = risk_edge
    cert = pki.write_leaf("alice-http-risk", pki.alice, pki.client_ca)
    token = create_session(redis_server.url, "vic", {"viewer"}, device_id="laptop-1")
    headers = {"authorization": f"Bearer {token}", "x-device-id": "new-phone", "user-agent": "c/8"}
    reply = stack.get("/app/home", cert=cert, headers=headers)
    assert reply.status == 428 and reply.headers["x-admitd-reason"] == "mfa_step_up_required"
    assert reply.headers["x-admitd-risk-level"] == "high"
    assert reply.headers["x-admitd-risk-signals"] == "new_device,ip_reputation"
    (line,) = [line for line in access_lines(access_log, 1) if line.startswith("/app/home")]
    assert line == "/app/home 428 risk=high signals=new_device,ip_reputation"
