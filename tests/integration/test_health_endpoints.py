"""`admitd serve`'s /healthz, /readyz and gRPC health against a real Redis that goes away.

Readiness names each check; with Redis stopped it turns 503 and the Check service's gRPC
health NOT_SERVING (liveness stays up), the audit spool fills, and both recover when
Redis is back. Every other path on the metrics port is 404.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.integration

CHECK_SERVICE = "envoy.service.auth.v3.Authorization"
POLICY = """
routes:
  - name: api
    match: {path_prefix: /api/}
    identities:
      spiffe: ["spiffe://test.example/user/*"]
"""


@dataclass
class Admitd:
    check_port: int
    metrics_port: int
    redis: RedisServer

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = reply.read()
                status = reply.status
        except urllib.error.HTTPError as error:
            body, status = error.read(), error.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"text": body.decode(errors="replace")}

    def grpc_health(self, service: str) -> int:
        with grpc.insecure_channel(f"127.0.0.1:{self.check_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            return int(reply.status)

    def deny(self, count: int) -> None:
        """Denials, each of which appends an audit entry."""
        request = CheckRequest()
        http_request = request.attributes.request.http
        http_request.method, http_request.path, http_request.host = "GET", "/api/x", "api.test"
        http_request.headers.update({"x-forwarded-proto": "https"})
        with grpc.insecure_channel(f"127.0.0.1:{self.check_port}") as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            for _ in range(count):
                assert stub.Check(request, timeout=5).denied_response.status.code == 495


@pytest.fixture
def admitd(pki: PkiSet, fresh_redis_server: RedisServer, tmp_path: Path) -> Iterator[Admitd]:
    ports = {name: free_port() for name in ("check", "metrics")}
    config_file = write_config(tmp_path, pki, fresh_redis_server.url, ports)
    with ProcessGroup(tmp_path / "logs") as group:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(config_file)]
        process = group.start("admitd", argv)
        wait_for_port(ports["check"], process=process)
        wait_for_port(ports["metrics"], process=process)
        yield Admitd(ports["check"], ports["metrics"], fresh_redis_server)


def write_config(tmp_path: Path, pki: PkiSet, redis_url: str, ports: dict[str, int]) -> Path:
    (tmp_path / "p.yaml").write_text(POLICY)
    config = {
        "listen": f"127.0.0.1:{ports['check']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": "p.yaml",
        "dev_mode": True,  # the dev KMS: the kms check wraps and unwraps through it
        "redis_url": redis_url,
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        # Identical denials fill the spool here: coalescing them would only slow that down.
        "audit": {
            "spool_file": str(tmp_path / "spool.jsonl"),
            "spool_max_bytes": 64 * 1024,
            "coalesce_seconds": 0,
        },
    }
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "admitd.yaml"


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_ready_names_every_check(admitd: Admitd) -> None:
    assert admitd.get("/healthz") == (200, {"status": "alive"})
    status, body = admitd.get("/readyz")
    assert status == 200 and body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"policy", "redis", "redis_eviction", "kms", "audit_spool", "shutdown"}
    assert all(check["ok"] for check in checks.values())
    assert checks["policy"]["detail"].startswith("version ")
    assert admitd.grpc_health(CHECK_SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_other_paths_are_404(admitd: Admitd) -> None:
    for path in ("/", "/health", "/readyz/", "/metrics/x", "/favicon.ico"):
        assert admitd.get(path)[0] == 404, path
    status, body = admitd.get("/metrics")
    text = str(body["text"])
    assert status == 200 and "admitd_decisions_total" in text
    # Expiry, key age and readiness, for the alert rules and the dashboard.
    assert 'admitd_ca_certificate_expiry_seconds{kind="root"' in text
    assert "admitd_kms_decrypt_only_versions{" in text
    # The readiness gauge is set once the first readiness pass has run.
    assert wait_for(
        lambda: 'admitd_ready_check{check="redis"} 1.0' in str(admitd.get("/metrics")[1]["text"])
    )


def test_without_redis_not_ready_and_the_spool_fills_then_both_recover(admitd: Admitd) -> None:
    admitd.redis.stop()
    assert wait_for(lambda: admitd.get("/readyz")[0] == 503)
    body = admitd.get("/readyz")[1]
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert not checks["redis"]["ok"] and checks["redis"]["detail"]
    assert checks["policy"]["ok"] and checks["kms"]["ok"]
    assert wait_for(
        lambda: admitd.grpc_health(CHECK_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    )
    # Liveness is not readiness: a restart would not bring Redis back.
    assert admitd.get("/healthz")[0] == 200
    assert admitd.grpc_health("") == health_pb2.HealthCheckResponse.SERVING

    # While Redis is away, audited denials go to the spool until it is nearly full.
    def spool_check() -> dict[str, object]:
        report = admitd.get("/readyz")[1]["checks"]
        assert isinstance(report, dict)
        return report["audit_spool"]  # type: ignore[no-any-return]

    deadline = time.monotonic() + 60
    while spool_check()["ok"] and time.monotonic() < deadline:
        admitd.deny(25)
    assert not spool_check()["ok"] and "about to be lost" in str(spool_check()["detail"])

    admitd.redis.start()
    assert wait_for(lambda: admitd.get("/readyz")[0] == 200, timeout=30)
    assert wait_for(
        lambda: admitd.grpc_health(CHECK_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    )


@pytest.mark.parametrize("event_loop", ["asyncio", "auto"])
def test_serves_on_either_event_loop(pki: PkiSet, tmp_path: Path, event_loop: str) -> None:
    """`event_loop: auto` runs on uvloop (installed with the dev and image extras),
    `asyncio` on the standard loop; both answer Checks and health."""
    ports = {name: free_port() for name in ("check", "metrics")}
    (tmp_path / "p.yaml").write_text(POLICY)
    config = {
        "listen": f"127.0.0.1:{ports['check']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": "p.yaml",
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "event_loop": event_loop,
    }
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(config))
    with ProcessGroup(tmp_path / "logs") as group:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(tmp_path / "admitd.yaml")]
        process = group.start("admitd", argv)
        wait_for_port(ports["check"], process=process)
        served = Admitd(ports["check"], ports["metrics"], None)  # type: ignore[arg-type]
        served.deny(1)
        assert wait_for(lambda: served.get("/readyz")[0] == 200)
    expected = "uvloop" if event_loop == "auto" else "asyncio"
    assert f"event loop {expected}" in (tmp_path / "logs" / "admitd.log").read_text()


def _policy(server: RedisServer, policy: str) -> None:
    client = redis.Redis.from_url(server.url)
    try:
        client.config_set("maxmemory-policy", policy)
    finally:
        client.close()


def test_admitd_is_not_ready_while_redis_may_evict_its_keys(admitd: Admitd) -> None:
    def eviction() -> dict[str, object]:
        report = admitd.get("/readyz")[1]["checks"]
        assert isinstance(report, dict)
        return report["redis_eviction"]  # type: ignore[no-any-return]

    assert eviction()["ok"] and "noeviction" in str(eviction()["detail"])
    _policy(admitd.redis, "volatile-lru")  # takes lockouts and used codes (they have TTLs)
    assert wait_for(lambda: not eviction()["ok"]), eviction()
    assert "volatile-lru" in str(eviction()["detail"]) and admitd.get("/readyz")[0] == 503
    assert wait_for(
        lambda: admitd.grpc_health(CHECK_SERVICE) != health_pb2.HealthCheckResponse.SERVING
    )
    _policy(admitd.redis, "noeviction")
    assert wait_for(lambda: admitd.get("/readyz")[0] == 200)


def test_admitd_refuses_to_start_on_an_evicting_redis(
    pki: PkiSet, fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    _policy(fresh_redis_server, "allkeys-lru")
    ports = {name: free_port() for name in ("check", "metrics")}
    config_file = write_config(tmp_path, pki, fresh_redis_server.url, ports)
    argv = [sys.executable, "-m", "admitd", "serve", "--config", str(config_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "maxmemory-policy is allkeys-lru" in done.stderr
    assert "redis_url" in done.stderr and "noeviction" in done.stderr
    assert "Traceback" not in done.stderr
