"""Through a real Envoy 1.40: mTLS at the edge, ext_authz to admitd, an echo upstream."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes

from admitd.certs.revocation import append_deny_entry
from admitd.devstack.envoy_config import render_edge_config
from admitd.devstack.processes import envoy_binary
from admitd.devstack.write_example import EXAMPLE
from admitd.pki import issue_leaf
from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet, pem

pytestmark = pytest.mark.e2e
Certs = dict[str, tuple[Path, Path]]


def test_valid_certificate_reaches_upstream_with_admitd_headers(
    edge: EdgeStack, certs: Certs, pki: PkiSet
) -> None:
    reply = edge.get("/api/items", cert=certs["alice"])
    assert reply.status == 200
    seen = reply.json()["headers"]
    assert isinstance(seen, dict)
    assert seen["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert seen["x-admitd-cert-sha256"] == pki.alice.cert.fingerprint(hashes.SHA256()).hex()
    assert seen["x-admitd-route"] == "api"


def test_no_certificate_is_495_json(edge: EdgeStack) -> None:
    reply = edge.get("/api/items")
    assert reply.status == 495
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
        ("no_client_eku", "/api/items", "missing_client_auth_eku"),
        ("bob", "/admin/users", "identity_not_allowed"),
    ],
)
def test_bad_certificates_are_495_with_reason(
    edge: EdgeStack, certs: Certs, name: str, path: str, reason: str
) -> None:
    reply = edge.get(path, cert=certs[name])
    assert reply.status == 495
    error = reply.json()["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["reason"]) == ("client_certificate_invalid", reason)
    assert reply.headers["x-admitd-reason"] == reason


def test_public_route_needs_no_certificate(edge: EdgeStack) -> None:
    assert edge.get("/healthz").status == 200


def test_forged_headers_give_no_benefit(edge: EdgeStack, certs: Certs, pki: PkiSet) -> None:
    forged_cert = {
        "x-client-cert": quote(pem(pki.alice)),
        "x-forwarded-client-cert": f'Cert="{quote(pem(pki.alice))}"',
    }
    assert edge.get("/admin/users", headers=forged_cert).status == 495
    forged_identity = {"x-admitd-principal": "spiffe://test.example/user/alice", **forged_cert}
    reply = edge.get("/api/items", cert=certs["bob"], headers=forged_identity)
    seen = reply.json()["headers"]
    assert isinstance(seen, dict)
    assert seen["x-admitd-principal"] == "spiffe://test.example/user/bob"
    assert "x-client-cert" not in seen
    assert "alice" not in seen.get("x-forwarded-client-cert", "")


def test_deny_list_applies_without_restart(edge: EdgeStack, pki: PkiSet) -> None:
    carol = issue_leaf(pki.client_ca, "carol", uris=("spiffe://test.example/user/carol",))
    carol_cert = pki.write_leaf("carol", carol, pki.client_ca)
    assert edge.get("/api/items", cert=carol_cert).status == 200
    append_deny_entry(edge.deny_list, serial=f"{carol.cert.serial_number:x}")
    deadline = time.monotonic() + 10
    while (
        reply := edge.get("/api/items", cert=carol_cert)
    ).status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reply.status == 495 and reply.json()["error"]["reason"] == "revoked"  # type: ignore[index]


def test_metrics_count_denials(edge: EdgeStack) -> None:
    import urllib.request

    edge.get("/api/items")
    with urllib.request.urlopen(
        f"http://127.0.0.1:{edge.metrics_port}/metrics", timeout=5
    ) as reply:
        text = reply.read().decode()
    assert 'security_events_total{event="missing",outcome="deny"}' in text
    assert "admitd_check_duration_seconds_bucket" in text


def test_admitd_down_means_503(pki: PkiSet, certs: Certs, tmp_path: Path) -> None:
    from tests.conftest import POLICY

    (tmp_path / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, tmp_path / "policies.yaml", tmp_path)
    try:
        assert stack.get("/api/items", cert=certs["alice"]).status == 200
        stack.stop_admitd()
        reply = stack.get("/api/items", cert=certs["alice"])
        assert reply.status == 503
        assert b"x-admitd" not in reply.body
    finally:
        stack.group.stop_all()


def test_committed_edge_config_is_current_and_valid(tmp_path: Path) -> None:
    import subprocess

    committed = Path(__file__).parents[2] / "envoy" / "edge.yaml"
    expected = render_edge_config(EXAMPLE)
    assert committed.read_text() == expected, (
        "regenerate with: python -m admitd.devstack.write_example"
    )
    # Validate a copy pointing at real files (validate mode loads the certificates).
    from admitd.pki import write_dev_pki

    write_dev_pki(tmp_path)
    text = expected.replace("/etc/admitd/pki", str(tmp_path))
    (tmp_path / "edge.yaml").write_text(text)
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "edge.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
