"""`admitd serve` with `workers: N` (N > 1): a supervisor and N workers sharing the Check port.

Each worker is `admitd serve --worker I`, a full `serve()` in its own process (a fresh
interpreter: nothing is inherited half-initialised from the supervisor, and the
environment that selects prometheus-client's multiprocess mode is set before it imports
anything). The kernel spreads new connections over the workers' listening sockets
(SO_REUSEPORT). Worker 0 starts first, alone, so a configuration error is reported once
and stops the supervisor (exit code of the worker) instead of looping; the others then
start together. A worker that exits later is restarted after a back-off that doubles up
to 30 s (reset once it ran a minute), each restart logged and counted. SIGTERM/SIGINT:
every worker gets SIGTERM, then `grace_seconds` (plus a moment to close) before SIGKILL.
SIGHUP is forwarded (policy reload). See docs/workers.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from admitd.config import UNIX_PREFIX, Config
from admitd.errors import ConfigError
from admitd.ops_http import MULTIPROC_ENV, listen_on
from admitd.workers_child import ops_socket, warn_stranded_spools
from admitd.workers_config import WorkerNeeds
from admitd.workers_health import WorkerProbes
from admitd.workers_metrics import WorkerFiles, WorkerView
from admitd.workers_ops import supervisor_ops_app
from admitd.workers_relay import relay_lines

__all__ = ["Backoff", "supervise", "worker_needs"]

log = logging.getLogger("admitd.workers")

CLOSE_SECONDS = 2.0  # after grace_seconds: a worker flushes its audit queue and closes
RELAY_DRAIN_SECONDS = 1.0


def worker_needs(config: Config) -> WorkerNeeds:
    """What decides whether this config can run several workers (for `--workers`)."""
    return WorkerNeeds(
        unix_listen=config.listen.startswith(UNIX_PREFIX)
        or config.http_listen.startswith(UNIX_PREFIX),
        has_redis=config.redis_url is not None,
        writes_sessions=config.web is not None or config.admin is not None,
    )


def supervise(config: Config, config_file: Path) -> int:
    """Blocking: run `config.workers` workers until SIGTERM/SIGINT; the exit code."""
    try:
        directory = Path(tempfile.mkdtemp(prefix="admitd-workers-"))
    except OSError as exc:
        raise ConfigError(
            f"no private directory for the workers' metrics: {exc.strerror}",
            key="workers",
            fix="give admitd a writable TMPDIR (in Kubernetes, an emptyDir on /tmp)",
        ) from None
    try:
        (directory / "metrics").mkdir()
        warn_stranded_spools(config)
        return asyncio.run(_supervise(config, config_file, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _supervise(config: Config, config_file: Path, directory: Path) -> int:
    return await Supervisor(config, config_file, directory).run()  # in the loop it uses


@dataclass(slots=True)
class Backoff:
    """Seconds before restarting a worker: doubling from `first` to `limit`, and back to
    `first` once a process ran `stable` seconds (a crash loop never spins)."""

    first: float = 0.5
    limit: float = 30.0
    stable: float = 60.0
    _next: float = 0.0

    def delay(self, ran_seconds: float) -> float:
        if self._next == 0.0 or ran_seconds >= self.stable:
            self._next = self.first
        delay, self._next = self._next, min(self._next * 2, self.limit)
        return delay


@dataclass(slots=True)
class _Slot:
    index: int
    backoff: Backoff
    process: asyncio.subprocess.Process | None = None
    lifeline: socket.socket | None = None
    relay: asyncio.Task[None] | None = None
    state: str = "stopped"
    restarts: int = 0
    started: float = 0.0
    last_exit: int | None = None

    def view(self) -> WorkerView:
        pid = self.process.pid if self.process is not None else None
        return WorkerView(self.index, pid, self.state, self.restarts, self.last_exit)


class Supervisor:
    def __init__(self, config: Config, config_file: Path, directory: Path) -> None:
        self._config = config
        self._config_file = config_file
        self._directory = directory
        self._files = WorkerFiles(directory / "metrics")
        self._slots = [_Slot(i, Backoff()) for i in range(config.workers)]
        self._probes = WorkerProbes([ops_socket(directory, i) for i in range(config.workers)])
        self._stop = asyncio.Event()
        self._env = {**os.environ, MULTIPROC_ENV: str(self._files.directory)}

    async def run(self) -> int:
        self._handle_signals()
        ops: web.AppRunner | None = None
        watchers: list[asyncio.Task[None]] = []
        try:
            ops = await self._start_ops()
            code = await self._start_all()
            if code == 0 and not self._stop.is_set():
                log.info("%d workers serving Check on %s", len(self._slots), self._listening())
                watchers = [asyncio.create_task(self._watch(slot)) for slot in self._slots]
                await self._stop.wait()
            return code
        finally:
            await self._shutdown()  # also when starting failed: no worker outlives this
            for watcher in watchers:
                watcher.cancel()
            if ops is not None:
                await ops.cleanup()
            await self._probes.close()

    def views(self) -> list[WorkerView]:
        return [slot.view() for slot in self._slots]

    def _listening(self) -> str:
        tls = self._config.tls_listen
        return " and ".join(filter(None, (self._config.listen, tls.address if tls else "")))

    def _handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward_sighup)

    def _forward_sighup(self) -> None:
        # Only to workers that serve: one still starting has no SIGHUP handler yet (the
        # default action would kill it), and it loads the current policies anyway.
        for slot in self._slots:
            if slot.state == "ready" and slot.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signal.SIGHUP)
        log.info("SIGHUP forwarded to the workers (policy reload)")

    async def _start_ops(self) -> web.AppRunner | None:
        address = self._config.metrics_listen
        if not address:
            return None
        app = supervisor_ops_app(self.views, self._files, self._probes, self._stop.is_set)
        try:
            return await listen_on(app, address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {address}: {exc.strerror}",
                file=self._config.file,
                key="metrics_listen",
            ) from None

    async def _start_all(self) -> int:
        """0 once every worker serves (or stop came); else the exit code of one that could
        not start. Worker 0 first: a config error is reported once, not once per worker."""
        first, others = self._slots[0], self._slots[1:]
        if not await self._start(first):
            return await self._could_not_start(first)
        started = await asyncio.gather(*(self._start(slot) for slot in others))
        for slot, ok in zip(others, started, strict=True):
            if not ok:
                return await self._could_not_start(slot)
        return 0

    async def _could_not_start(self, slot: _Slot) -> int:
        if self._stop.is_set() or slot.process is None:
            return 0
        code = await slot.process.wait()
        await self._reap(slot, code)
        log.error("worker %d exited with %d before it served (error above)", slot.index, code)
        return code if code > 0 else 1

    async def _start(self, slot: _Slot) -> bool:
        """Start `slot`'s process: True once it serves; False if it exited first (it is
        left to be reaped) or the supervisor was told to stop meanwhile."""
        await self._spawn(slot)
        assert slot.process is not None and slot.lifeline is not None
        loop = asyncio.get_running_loop()
        said = asyncio.ensure_future(loop.sock_recv(slot.lifeline, 64))
        exited = asyncio.ensure_future(slot.process.wait())
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait((said, exited, stopped), return_when=asyncio.FIRST_COMPLETED)
        # The worker writes only `ready`; end-of-file means it closed its end (it exited).
        serving = said.done() and said.exception() is None and bool(said.result())
        for waiter in (said, exited, stopped):
            waiter.cancel()
        if serving:
            slot.state = "ready"
            log.info("worker %d (pid %d) serving", slot.index, slot.process.pid)
            return True
        return False

    async def _spawn(self, slot: _Slot) -> None:
        ops_socket(self._directory, slot.index).unlink(missing_ok=True)
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv(slot.index, theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # signals come from the supervisor only
                env=self._env,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        assert process.stderr is not None
        slot.process, slot.lifeline, slot.state = process, ours, "starting"
        slot.started = asyncio.get_running_loop().time()
        slot.relay = asyncio.create_task(relay_lines(process.stderr))

    def _argv(self, index: int, lifeline: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "admitd",
            "serve",
            "--config",
            str(self._config_file),
            "--workers",
            str(len(self._slots)),
            "--worker",
            str(index),
            "--worker-dir",
            str(self._directory),
            "--worker-fd",
            str(lifeline),
        ]

    async def _watch(self, slot: _Slot) -> None:
        """Restart `slot`'s worker whenever it exits, until the supervisor stops."""
        while slot.process is not None:
            code = await slot.process.wait()
            if self._stop.is_set():
                return
            ran = asyncio.get_running_loop().time() - slot.started
            pid = slot.process.pid
            await self._reap(slot, code)
            delay = slot.backoff.delay(ran)
            slot.restarts += 1
            slot.state = "restarting"
            log.warning(
                "worker %d (pid %d) exited with %s after %.1f s; restarting in %.1f s (restart %d)",
                *(slot.index, pid, code, ran, delay, slot.restarts),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
                return
            await self._start(slot)

    async def _reap(self, slot: _Slot, code: int) -> None:
        """After `slot`'s process exited: its relay drained, its metric files handled."""
        if slot.process is None:
            return
        pid, slot.process = slot.process.pid, None
        slot.last_exit, slot.state = code, "stopped"
        if slot.lifeline is not None:
            slot.lifeline.close()
            slot.lifeline = None
        if slot.relay is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.relay, RELAY_DRAIN_SECONDS)
        self._files.forget(pid)

    async def _shutdown(self) -> None:
        running = [(slot, slot.process) for slot in self._slots if slot.process is not None]
        for slot, process in running:
            slot.state = "stopping"
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        limit = self._config.grace_seconds + CLOSE_SECONDS
        waits = [asyncio.ensure_future(process.wait()) for _, process in running]
        if waits:
            await asyncio.wait(waits, timeout=limit)
        for (slot, process), wait in zip(running, waits, strict=True):
            if not wait.done():
                log.warning("worker %d did not stop within %.1f s: SIGKILL", slot.index, limit)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await self._reap(slot, await wait)
        log.info("admitd stopped (%d workers)", len(self._slots))
