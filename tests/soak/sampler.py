"""Samples admitd's process every few seconds: resident memory, open fds, threads, tasks.

Read from /proc/<pid> (VmRSS, Threads, the fd directory, CPU time), in a thread of its
own so a busy load loop cannot delay a sample. Sockets connected to Redis are counted
apart: redis-py keeps every pooled connection it ever opened (up to its pool's bound of
100), so a stall that raised concurrency leaves them open: a ratchet with a ceiling, not
a leak, judged against the ceiling rather than against the warm-up.

The asyncio task count is read off admitd's /metrics as `admitd_event_loop_tasks` when
admitd exports it; until then it is None and fds and threads stand in for it (a leaked
task usually holds a socket or a timer).
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TASKS_LINE", "TASKS_METRIC", "Sample", "Sampler", "read_sample"]

TASKS_METRIC = "admitd_event_loop_tasks"
TASKS_LINE = re.compile(rf"^{TASKS_METRIC}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", re.M)


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the load started
    rss_kib: int
    fds: int
    redis_connections: int  # of `fds`: TCP sockets whose peer is Redis's port
    threads: int
    cpu_s: float  # admitd's user + system CPU time so far
    tasks: int | None  # None: admitd does not export TASKS_METRIC
    requests: int  # requests sent by then

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def other_fds(self) -> int:
        return self.fds - self.redis_connections


def read_sample(
    pid: int, t: float, requests: int, redis_port: int, metrics_url: str | None
) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0])  # kB
    threads = int(fields["Threads"])
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed between the listing and the read
    redis = _sockets_to_port(pid, redis_port)
    to_redis = sum(1 for link in links if link in redis)
    cpu = _cpu_seconds(pid)
    return Sample(t, rss, len(links), to_redis, threads, cpu, _tasks(metrics_url), requests)


def _cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sockets_to_port(pid: int, port: int) -> set[str]:
    """`socket:[inode]` of every TCP socket in admitd's namespace whose remote port is `port`."""
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and int(cols[2].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{cols[9]}]")
    return found


def _tasks(metrics_url: str | None) -> int | None:
    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(metrics_url, timeout=2) as reply:  # loopback only
            body = reply.read().decode()
    except OSError:
        return None
    found = TASKS_LINE.search(body)
    return int(float(found.group(1))) if found else None


class Sampler:
    """`start()` samples at once and then every `interval` seconds until `stop()`."""

    def __init__(
        self,
        pid: int,
        interval: float,
        progress: list[int],
        redis_port: int,
        metrics_url: str | None = None,
    ) -> None:
        self.samples: list[Sample] = []
        self._pid, self._interval, self._progress = pid, interval, progress
        self._redis_port = redis_port
        self._metrics_url = metrics_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._started = 0.0

    def start(self, started: float) -> None:
        self._started = started
        self._thread.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.samples

    def _run(self) -> None:
        if _tasks(self._metrics_url) is None:
            self._metrics_url = None  # not exported: no scrape every sample for nothing
        next_at = self._started
        while not self._stop.is_set():
            now = time.monotonic()
            self.samples.append(
                read_sample(
                    self._pid,
                    now - self._started,
                    self._progress[0],
                    self._redis_port,
                    self._metrics_url,
                )
            )
            next_at += self._interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
