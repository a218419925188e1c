"""Device risk and the audit log through a real Envoy, a real Redis and `admitd serve`.

A viewer (no privileged role) on a new device, from an IP on the reputation list, is
stepped up and sees why; the denial lands in the hash-chained audit log, which verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.stack import EdgeStack, start_edge
from tests.integration.redis_server import RedisServer, has_redis_server
from tests.pki_fixtures import PkiSet
from tests.redis_sessions import create_session

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

POLICY = """
routes:
  - name: app
    match: {path_prefix: /app/}
    identities: any
    session: required
"""


def write_keys(directory: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = directory / "audit-signing.pem", directory / "audit-public.pem"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def login(url: str, user: str) -> str:
    return create_session(url, user, {"viewer"}, device_id="laptop-1")


@pytest.fixture(scope="module")
def edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("risk-edge")
    (work / "policies.yaml").write_text(POLICY)
    (work / "blocklist.txt").write_text(
        "# loopback stands in for a listed address\n127.0.0.1/32 ; SBL-test\n"
    )
    private, _ = write_keys(work)
    extra = {
        "dev_mode": True,  # deterministic dev KMS keys seal telemetry and audit entries
        "risk": {"reputation_files": [str(work / "blocklist.txt")]},
        "audit": {
            "spool_file": str(work / "audit-spool.jsonl"),
            "signing_key_file": str(private),
            "checkpoint_interval_seconds": 1,
        },
    }
    stack = start_edge(
        pki, work / "policies.yaml", work, redis_url=redis_server.url, extra_config=extra
    )
    yield stack
    stack.group.stop_all()


def test_new_device_from_listed_ip_is_stepped_up_with_signals(
    edge: EdgeStack, redis_server: RedisServer, pki: PkiSet
) -> None:
    cert = pki.write_leaf("alice-risk", pki.alice, pki.client_ca)
    token = login(redis_server.url, "vic")
    headers = {
        "authorization": f"Bearer {token}",
        "x-device-id": "brand-new-phone",
        "user-agent": "curl/8",
    }
    reply = edge.get("/app/home", cert=cert, headers=headers)
    assert reply.status == 428
    assert reply.headers["x-admitd-risk-level"] == "high"
    assert reply.headers["x-admitd-risk-signals"] == "new_device,ip_reputation"
    error = reply.json()["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["risk_level"]) == ("mfa_step_up_required", "high")


def test_denials_are_chained_in_the_audit_log_and_verify(
    edge: EdgeStack, redis_server: RedisServer, tmp_path: Path
) -> None:
    edge.get("/app/home")  # no certificate: a denial
    client = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 10
    while client.xlen("admitd:audit") < 2:
        assert time.monotonic() < deadline, "no audit entries appeared"
        time.sleep(0.1)
    client.close()
    public = next(Path(p) for p in edge.group.log_dir.parent.glob("audit-public.pem"))
    time.sleep(1.5)  # let a checkpoint be signed
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "admitd",
            "audit",
            "verify",
            "--redis-url",
            redis_server.url,
            "--public-key",
            str(public),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
