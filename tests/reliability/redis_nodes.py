"""Redis processes a fault can kill outright: a single server, and a Sentinel-managed set
(one master, one replica, three sentinels) on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from tests.integration.redis_server import RedisServer, free_port

__all__ = ["SERVICE", "KillableRedis", "SentinelSet", "has_redis_sentinel"]

SERVICE = "relmaster"  # the Sentinel service name admitd's URL names
_DOWN_AFTER_MS = 1000  # a master silent this long is subjectively down


def has_redis_sentinel() -> bool:
    return shutil.which("redis-sentinel") is not None


class KillableRedis(RedisServer):
    """A RedisServer that can also be killed outright (no shutdown, no final write), and
    started as a replica of another (`replica_of`, a port)."""

    def __init__(self, workdir: Path, *, durable: bool = False, replica_of: int = 0) -> None:
        super().__init__(workdir, durable=durable)
        self.replica_of = replica_of

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None or not self.replica_of:
            super().start(timeout)
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        command += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_ready(timeout)

    def kill(self) -> None:
        if self._process is None:
            return
        self.thaw()
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None


class SentinelSet:
    """Master, replica and three sentinels (quorum 2, down after 1 s) on free ports."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.master = KillableRedis(work / "master")
        self.replica = KillableRedis(work / "replica", replica_of=self.master.port)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def nodes(self) -> tuple[KillableRedis, KillableRedis]:
        return self.master, self.replica

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        for index, port in enumerate(self.sentinel_ports):
            config = self.work / f"sentinel-{index}.conf"
            config.write_text(self._sentinel_config(port))
            log = (self.work / f"sentinel-{index}.log").open("ab")
            self._sentinels.append(
                subprocess.Popen(
                    ["redis-sentinel", str(config)], stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()

    def _sentinel_config(self, port: int) -> str:
        return (
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.work}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {_DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every sentinel knows the replica and the two other sentinels (they find
        each other through the master's hello channel, every 2 s), and the replica is in
        sync: only then can a failover be agreed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = all(self._sentinel_ready(port) for port in self.sentinel_ports)
            if ready and self._replica_linked():
                return
            time.sleep(0.2)
        raise TimeoutError(f"the sentinels never agreed on {SERVICE} within {timeout}s")

    def _sentinel_ready(self, port: int) -> bool:
        try:
            with Redis(port=port, socket_timeout=1, decode_responses=True) as client:
                state = client.sentinel_master(SERVICE)
        except RedisError:  # not answering yet
            return False
        return (
            int(state.get("num-other-sentinels", 0)) == 2 and int(state.get("num-slaves", 0)) == 1
        )

    def _replica_linked(self) -> bool:
        with Redis(port=self.replica.port, socket_timeout=1, decode_responses=True) as client:
            return client.info("replication").get("master_link_status") == "up"

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            try:
                with Redis(port=port, socket_timeout=1, decode_responses=True) as client:
                    _, master = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
                    )
                    return int(master)
            except RedisError:
                continue
        raise RuntimeError("no sentinel answered")

    def master_client(self) -> Redis:
        sentinel = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=2)
        return sentinel.master_for(SERVICE, socket_timeout=5)

    def wait_replicated(self) -> int:
        """WAIT 1 on the master: everything written so far reached the replica."""
        with Redis(port=self.master_port(), socket_timeout=10) as client:
            acknowledged = int(client.execute_command("WAIT", 1, 5000))
        assert acknowledged >= 1, "the replica did not acknowledge the master's writes"
        return acknowledged

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> int:
        """Until the sentinels name another master; returns its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.master_port()
            except RuntimeError:
                port = old_port
            if port != old_port:
                return port
            time.sleep(0.05)
        raise TimeoutError(f"no failover away from port {old_port} within {timeout}s")

    def stop(self) -> None:
        for process in self._sentinels:
            process.terminate()
        for process in self._sentinels:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._sentinels.clear()
        self.replica.stop()
        self.master.stop()
