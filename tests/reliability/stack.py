"""The system under test: its own Redis (a server, a Sentinel-managed set, or a Redis
Cluster with replicas), one or two
`admitd serve` replicas (audit and device risk on), the real Envoy edge and the echo
upstream, on free loopback ports.

Replica 0 is "admitd" for the faults that run one; the `*_admitd` methods act on it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from tests.e2e.stack import envoy_command
from tests.integration.redis_cluster import RedisCluster3
from tests.pki_fixtures import PkiSet
from tests.reliability.admitd_config import ADMIN, POLICY, write_admitd_config, write_shared_files
from tests.reliability.admitd_process import AdmitdReplica
from tests.reliability.delay_proxy import DelayProxy
from tests.reliability.envoy_edge import wait_replicas_healthy, write_envoy_config
from tests.reliability.redis_nodes import KillableRedis, SentinelSet

__all__ = ["ADMIN", "POLICY", "STREAM", "ReliabilityStack", "StackSettings", "start_stack"]

STREAM = "admitd:audit"


@dataclass(frozen=True, slots=True)
class StackSettings:
    durable_redis: bool = False  # an fsync'd AOF: a restart keeps the data
    redis_proxy: bool = False  # admitd reaches Redis through a DelayProxy
    grace_seconds: float = 10.0  # admitd's drain on SIGTERM
    session_cache: bool = True  # off: every session Check reads Redis (so it can be slowed)
    replicas: int = 1  # admitd processes behind one health-checked Envoy cluster
    sentinel: bool = False  # master + replica + 3 sentinels; admitd uses redis+sentinel://
    cluster: bool = False  # Redis Cluster, 3 masters each with a replica; redis+cluster://
    authz_proxy: bool = False  # Envoy reaches admitd (replica 0) through a DelayProxy
    admin_api: bool = False  # each replica serves the admin API (mTLS) on its admin_port
    audit: tuple[tuple[str, object], ...] = ()  # `audit:` keys set for this stack


@dataclass
class ReliabilityStack:
    work: Path
    pki: PkiSet
    redis: KillableRedis | None  # the master, for a Sentinel set (until a failover); or None
    group: ProcessGroup
    https_port: int
    replicas: list[AdmitdReplica]
    proxy: DelayProxy | None  # admitd -> Redis
    authz_proxy: DelayProxy | None = None  # Envoy -> admitd
    sentinels: SentinelSet | None = None
    cluster: RedisCluster3 | None = None  # instead of `redis`

    @property
    def admitd(self) -> AdmitdReplica:
        return self.replicas[0]

    @property
    def authz_port(self) -> int:
        return self.admitd.authz_port

    @property
    def metrics_port(self) -> int:
        return self.admitd.metrics_port

    @property
    def config_file(self) -> Path:
        return self.admitd.config_file

    def audit_appends(self) -> dict[str, float]:
        """admitd_audit_appends_total by outcome, from admitd's /metrics (replica 0)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        return {
            sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "admitd_audit_appends"
            for sample in family.samples
            if sample.name == "admitd_audit_appends_total"
        }

    @property
    def spool_file(self) -> Path:
        return self.admitd.spool_file

    @property
    def admitd_log(self) -> Path:
        return self.admitd.log_file

    @property
    def decision_logs(self) -> list[Path]:
        return [replica.log_file for replica in self.replicas]

    @property
    def admitd_process(self) -> subprocess.Popen[bytes] | None:
        return self.admitd.process

    @property
    def redis_url(self) -> str:
        """Redis as the test's own helpers (sessions made, revoked) reach it: the current
        master, directly. Not through Sentinel: admitd's redis+sentinel client, closed,
        leaves its connections to the sentinels open (a ResourceWarning in a test).
        A cluster's is its redis+cluster:// URL: its keys are spread over the masters."""
        if self.cluster is not None:
            return self.cluster.url
        if self.sentinels is not None:
            return f"redis://127.0.0.1:{self.sentinels.master_port()}/0"
        assert self.redis is not None
        return self.redis.url

    def start_admitd(self, *, wait: bool = True) -> None:
        self.admitd.start(wait=wait)

    def wait_admitd_listening(self, timeout: float = 60.0) -> None:
        self.admitd.wait_listening(timeout)

    def signal_admitd(self, sig: signal.Signals) -> None:
        self.admitd.signal(sig)

    def wait_admitd_exit(self, timeout: float = 60.0) -> int:
        return self.admitd.wait_exit(timeout)

    def stop_admitd(self) -> None:
        self.admitd.stop()

    # audit ---------------------------------------------------------------------------
    def redis_client(self) -> Redis:
        """A direct client of the (current) master, bypassing any proxy; for a cluster, of
        the master serving the audit stream's slot."""
        if self.cluster is not None:
            return self.cluster.client(self.cluster.master_of(STREAM))
        if self.sentinels is not None:
            return self.sentinels.master_client()
        assert self.redis is not None
        return Redis.from_url(self.redis.url, socket_timeout=5)

    def wait_audit_settled(self, timeout: float = 90.0) -> None:
        """Until every spool is empty and the stream length has not moved for 2 s."""
        deadline = time.monotonic() + timeout
        client = self.redis_client()
        try:
            last, stable_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                length = int(client.xlen(STREAM))
                pending = any(_spool_pending(r.spool_file) for r in self.replicas)
                if length != last or pending:
                    last, stable_since = length, time.monotonic()
                elif time.monotonic() - stable_since >= 2.0:
                    return
                time.sleep(0.2)
        finally:
            client.close()
        raise TimeoutError(f"audit stream still moving or spool not empty after {timeout}s")

    def export_audit(self) -> list[dict[str, object]]:
        """Every entry in the stream, decrypted, via `admitd audit export`."""
        out = self.work / "audit-export.jsonl"
        result = self.admitd_cli(
            "audit",
            "export",
            "--since",
            "1970-01-01T00:00:00Z",
            "--out",
            str(out),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        return [row for row in rows if isinstance(row, dict)]

    def verify_audit(self) -> subprocess.CompletedProcess[str]:
        """`admitd audit verify` as an operator runs it: with the config's own Redis URL
        (redis+sentinel:// and redis+cluster:// included)."""
        return self.admitd_cli(
            "audit", "verify", "--public-key", str(self.work / "audit-public.pem")
        )

    def admitd_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "admitd",
                *args[:2],
                "--config",
                str(self.config_file),
                *args[2:],
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        for replica in self.replicas:
            replica.close()
        self.group.stop_all()
        for proxy in (self.proxy, self.authz_proxy):
            if proxy is not None:
                proxy.stop()
        if self.sentinels is not None:
            self.sentinels.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.redis is not None:
            self.redis.stop()


def _spool_pending(spool: Path) -> bool:
    return spool.exists() and spool.stat().st_size > 0


def start_stack(pki: PkiSet, work: Path, settings: StackSettings) -> ReliabilityStack:
    ports = {name: free_port() for name in ("https", "upstream", "admin")}
    work.mkdir(parents=True, exist_ok=True)
    sentinels = SentinelSet(work / "sentinel") if settings.sentinel else None
    cluster = RedisCluster3(work / "cluster", replicas=1) if settings.cluster else None
    redis_server: KillableRedis | None = None
    if sentinels is not None:
        (work / "sentinel").mkdir(parents=True, exist_ok=True)
        sentinels.start()
        redis_server = sentinels.master
    elif cluster is not None:
        assert not settings.redis_proxy, "no delaying proxy in front of a cluster"
        cluster.start()  # returns once every replica is in sync
    else:
        redis_server = KillableRedis(work / "redis", durable=settings.durable_redis)
        redis_server.start()
    proxy = None
    if settings.redis_proxy:
        assert redis_server is not None
        proxy = DelayProxy(redis_server.port).start()
    if cluster is not None:
        redis_url = cluster.url
    elif sentinels is not None:
        redis_url = sentinels.url
    else:
        redis_url = f"redis://127.0.0.1:{proxy.port if proxy else redis_server.port}/0"
    names = ["admitd"] if settings.replicas == 1 else [f"admitd-{i}" for i in range(2)]
    replicas = [AdmitdReplica(name, work) for name in names[: settings.replicas]]
    write_shared_files(work)
    for replica in replicas:
        write_admitd_config(replica, pki, redis_url, settings)
    authz_proxy = DelayProxy(replicas[0].authz_port).start() if settings.authz_proxy else None
    envoy_ports = [authz_proxy.port] if authz_proxy else [r.authz_port for r in replicas]
    write_envoy_config(work / "envoy.yaml", pki, ports, envoy_ports)
    group = ProcessGroup(work / "logs")
    stack = ReliabilityStack(
        work,
        pki,
        redis_server,
        group,
        ports["https"],
        replicas,
        proxy,
        authz_proxy,
        sentinels,
        cluster,
    )
    try:
        upstream = group.start(
            "upstream",
            [sys.executable, "-m", "admitd.devstack.echo", "--port", str(ports["upstream"])],
        )
        for replica in replicas:
            replica.start(wait=False)
        envoy = group.start("envoy", envoy_command(work / "envoy.yaml", ports["admin"]))
        if sentinels is not None:
            sentinels.wait_ready()
        wait_for_port(ports["upstream"], process=upstream)
        for replica in replicas:
            replica.wait_listening()
        wait_for_port(ports["https"], process=envoy)
        if len(replicas) > 1:
            wait_replicas_healthy(ports["admin"], len(replicas))
    except Exception:
        stack.stop()
        raise
    return stack
