"""CPU used while a variant is measured: per process, by the load generator, and by others.

On a 2-core machine every process of the benchmark competes for the same cores, so the
CPU each one used (in cores) says more than req/s alone; `others` is whatever ran on the
machine outside the benchmark meanwhile (a run with much of it is suspect).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

__all__ = [
    "NOISY_CORES",
    "as_cores",
    "authz_us_per_request",
    "cpu_seconds",
    "cpu_snapshot",
    "cpu_used",
    "machine_busy_seconds",
]

NOISY_CORES = 0.2  # CPU used by processes outside the benchmark that makes a run suspect
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process and its live children (admitd's workers)."""
    return _own_seconds(pid) + sum(_own_seconds(child) for child in _children(pid))


def _own_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # a child that exited between listing and reading
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(child) for child in text.split()]


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (every process, ours or not)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK  # minus idle and iowait


def cpu_snapshot(pids: dict[str, int], load: str) -> dict[str, float]:
    """CPU seconds so far of each named process, of finished children (the load
    generator, named `load`: wrk or h2load) and of the whole machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot = {name: cpu_seconds(pid) for name, pid in pids.items()}
    snapshot[load] = children.ru_utime + children.ru_stime
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two snapshots, plus `others` (not ours)."""
    used = {name: seconds - before[name] for name, seconds in after.items()}
    ours = sum(seconds for name, seconds in used.items() if name != "machine")
    used["others"] = max(0.0, used["machine"] - ours)
    return used


def as_cores(used: dict[str, float], wall: float) -> dict[str, float]:
    return {name: round(seconds / wall, 2) for name, seconds in used.items()}


def authz_us_per_request(used: dict[str, float], requests: int) -> float | None:
    """The Check server's CPU per request in µs (None without one, or without requests)."""
    if "authz" not in used or not requests:
        return None
    return round(used["authz"] / requests * 1e6, 1)
