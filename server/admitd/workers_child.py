"""One worker of a supervised admitd: a full `serve()` with the few settings it must not share.

The supervisor (admitd.workers) starts `admitd serve --worker INDEX ...` with a socket
pair: the worker writes `ready` on it once it serves, and reads end-of-file on it when
the supervisor is gone, which stops it like SIGTERM does (no orphan keeps the port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, replace
from pathlib import Path

from admitd.audit.config import AuditConfig
from admitd.config import UNIX_PREFIX, Config

__all__ = [
    "READY",
    "WorkerRole",
    "ops_socket",
    "run_worker",
    "spool_file",
    "warn_stranded_spools",
    "worker_config",
]

log = logging.getLogger("admitd.workers")

READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class WorkerRole:
    index: int  # 0 is the first worker: the only one serving the step-up pages and admin API
    directory: Path  # the supervisor's private directory (metric files, ops sockets)
    lifeline: int  # this end of the socket pair, inherited from the supervisor

    @property
    def serves_pages_and_admin(self) -> bool:
        return self.index == 0


def ops_socket(directory: Path, index: int) -> Path:
    """Where worker `index` serves /metrics, /healthz and /readyz for the supervisor."""
    return directory / f"worker-{index}.sock"


def spool_file(configured: Path, index: int) -> Path:
    """Worker 0 keeps the configured audit spool (so a spool written before workers were
    turned on is replayed); each other worker has its own, since a spool has one writer."""
    if index == 0:
        return configured
    return configured.with_name(f"{configured.stem}.worker{index}{configured.suffix}")


def worker_config(config: Config, role: WorkerRole) -> Config:
    """The settings a worker must not share: its ops listener and its audit spool."""
    return replace(
        config,
        metrics_listen=f"{UNIX_PREFIX}{ops_socket(role.directory, role.index)}",
        audit=_worker_audit(config.audit, config.workers, role.index),
    )


def _worker_audit(audit: AuditConfig | None, workers: int, index: int) -> AuditConfig | None:
    if audit is None:
        return None
    # The configured bound is for the whole process: the disk it protects is shared.
    share = max(audit.spool_max_bytes // workers, 64 * 1024)
    return replace(audit, spool_file=spool_file(audit.spool_file, index), spool_max_bytes=share)


def run_worker(config: Config, role: WorkerRole) -> int:
    """Blocking: serve as worker `role.index` until SIGTERM or the supervisor's exit."""
    from admitd.server import loop_factory  # here: the supervisor imports this module too

    mine = worker_config(config, role)
    with asyncio.Runner(loop_factory=loop_factory(mine.event_loop)) as runner:
        runner.run(_serve_worker(mine, role))
    return 0


async def _serve_worker(config: Config, role: WorkerRole) -> None:
    from admitd.server import serve

    lifeline = socket.socket(fileno=role.lifeline)
    lifeline.setblocking(False)
    loop = asyncio.get_running_loop()
    loop.add_reader(lifeline.fileno(), _stop_when_orphaned, loop, lifeline)
    ready = asyncio.Event()
    announce = asyncio.create_task(_announce_ready(ready, lifeline))
    try:
        await serve(config, ready=ready, pages_and_admin=role.serves_pages_and_admin)
    finally:
        announce.cancel()
        loop.remove_reader(lifeline.fileno())
        lifeline.close()


async def _announce_ready(ready: asyncio.Event, lifeline: socket.socket) -> None:
    await ready.wait()
    with contextlib.suppress(OSError):  # the supervisor is gone: the reader stops us
        await asyncio.get_running_loop().sock_sendall(lifeline, READY)


def _stop_when_orphaned(loop: asyncio.AbstractEventLoop, lifeline: socket.socket) -> None:
    """The supervisor never writes: readable means it closed its end (it exited or died)."""
    try:
        data = lifeline.recv(64)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        loop.remove_reader(lifeline.fileno())
        os.kill(os.getpid(), signal.SIGTERM)  # the same graceful stop as an operator's


def warn_stranded_spools(config: Config) -> None:
    """A spool of a worker this run will not start (`workers` was lowered) is replayed by
    nobody: say so, so that an operator can start that many workers once to drain it."""
    if config.audit is None:
        return
    configured = config.audit.spool_file
    pattern = f"{configured.stem}.worker*{configured.suffix}"
    for path in sorted(configured.parent.glob(pattern)):
        index = path.name.removeprefix(f"{configured.stem}.worker").removesuffix(configured.suffix)
        if index.isdigit() and int(index) >= config.workers and _has_entries(path):
            log.warning(
                "audit spool %s holds entries of worker %s, which this run does not start:"
                " run admitd once with workers: %d or more to replay them",
                *(path, index, int(index) + 1),
            )


def _has_entries(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
