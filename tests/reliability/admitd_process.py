"""One `admitd serve` replica of the system under test: its config, ports, spool and log.

It runs outside the ProcessGroup so a fault can SIGKILL, SIGTERM and restart it; its
log (the decision log included) is appended across restarts, one file per replica.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from admitd.devstack.processes import free_port, wait_for_port

__all__ = ["AdmitdReplica"]


@dataclass
class AdmitdReplica:
    name: str  # also its audit `instance`
    work: Path  # the stack's directory (config, spool and log are named after the replica)
    authz_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    starts: int = 0
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def config_file(self) -> Path:
        return self.work / f"{self.name}.yaml"

    @property
    def spool_file(self) -> Path:
        return self.work / f"{self.name}-audit-spool.jsonl"

    @property
    def log_file(self) -> Path:
        return self.work / "logs" / f"{self.name}.log"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        assert not self.running, f"{self.name} still runs"
        if self._log is None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "admitd", "serve", "--config", str(self.config_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.starts += 1
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout: float = 60.0) -> None:
        wait_for_port(self.authz_port, process=self._process, timeout=timeout)

    def signal(self, sig: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self._process is not None
        return self._process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        self.signal(signal.SIGKILL)
        self.wait_exit()

    def stop(self) -> None:
        if not self.running:
            return
        assert self._process is not None
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
