"""A throwaway redis-server on a free loopback port, which a test can stop and start again."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServers", "free_port", "has_redis_server"]


def has_redis_server() -> bool:
    return shutil.which("redis-server") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """By default no persistence: every start is an empty Redis on the same port.
    `durable=True` keeps an fsync'd append-only file, so a restart keeps the data."""

    def __init__(self, workdir: Path, port: int | None = None, *, durable: bool = False) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.durable = durable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        command += ["--save", "", *persistence, "--dir", str(self.workdir)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_ready(timeout)

    def stop(self) -> None:
        if self._process is None:
            return
        self.thaw()  # a stopped process would hold SIGTERM until continued
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing ever answers."""
        assert self._process is not None, "start the server first"
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode}")
            if self._answers_ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class RedisServers:
    """Starts throwaway redis-servers, each in its own directory under `root`; leaving the
    `with` block (or `stop_all()`) stops every one it started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._started: list[RedisServer] = []

    def start(self, *, durable: bool = False) -> RedisServer:
        server = RedisServer(self.root / f"redis-{len(self._started)}", durable=durable)
        self._started.append(server)
        server.start()
        return server

    def stop_all(self) -> None:
        for server in self._started:
            server.stop()

    def __enter__(self) -> RedisServers:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()
