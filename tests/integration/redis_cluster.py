"""A throwaway three-master Redis Cluster on free loopback ports."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisCluster3"]


class RedisCluster3:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = [_cluster_port() for _ in range(3)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def __enter__(self) -> RedisCluster3:
        try:
            self._start()
        except BaseException:
            self.__exit__()  # never leak nodes when start-up fails half way
            raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            node = self.workdir / str(port)
            node.mkdir(parents=True, exist_ok=True)
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--cluster-enabled", "yes", "--dir", str(node)]
            argv += ["--cluster-config-file", str(node / "nodes.conf")]
            with (node / "redis.log").open("wb") as log:  # the child keeps its own descriptor
                self._processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:
            _wait_for_ping(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._wait_until_ok()

    def _wait_until_ok(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run(
                ["redis-cli", "-p", str(self.ports[0]), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout
            if "cluster_state:ok" in info:
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def __exit__(self, *_: object) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis node on {port} did not start")  # its log: <workdir>/<port>/redis.log


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too; Redis needs both."""
    for _ in range(200):
        port = 20_000 + secrets.randbelow(25_000)
        if _is_free(port) and _is_free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
