"""The `workers` setting: how many processes share the Check port (docs/workers.md).

A whole number from 1 to `MAX_WORKERS`, or `auto`: the CPUs this process may run on
(its affinity mask, capped by a cgroup v2 CPU quota when there is one). More than one
worker needs a TCP Check listener (a Unix socket cannot be shared) and, when the step-up
pages or the admin API write session state, Redis (so every worker reads the same state).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from admitd.errors import ConfigError
from admitd.fields import Fields

__all__ = [
    "MAX_WORKERS",
    "WorkerNeeds",
    "check_workers",
    "usable_cpus",
    "workers_from_fields",
    "workers_from_text",
]

MAX_WORKERS = 64
_FIX = f"a whole number from 1 to {MAX_WORKERS}, or auto (one per usable CPU)"
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True, slots=True)
class WorkerNeeds:
    """What in the rest of the config decides whether several workers can work."""

    unix_listen: bool  # `listen: unix://...` or `http_listen: unix://...`
    has_redis: bool  # `redis_url` is set
    writes_sessions: bool  # `web:` or `admin:`: someone creates or revokes sessions


def workers_from_fields(fields: Fields, needs: WorkerNeeds) -> int:
    """The config's `workers` (default 1). Raises ConfigError naming the key and the fix."""
    raw = fields.raw.get("workers", 1)
    count = _parse(raw)
    if count is None:
        raise fields.error("workers", f"expected a number of workers, got {raw!r}", _FIX)
    problem = check_workers(count, needs)
    if problem is not None:
        raise fields.error("workers", *problem)
    return count


def workers_from_text(text: str, needs: WorkerNeeds) -> int:
    """`admitd serve --workers N|auto`, which overrides the config's `workers`."""
    count = _parse(int(text) if text.strip().isdigit() else text)
    if count is None:
        raise ConfigError(f"expected a number of workers, got {text!r}", key="--workers", fix=_FIX)
    problem = check_workers(count, needs)
    if problem is not None:
        raise ConfigError(problem[0], key="--workers", fix=problem[1])
    return count


def check_workers(count: int, needs: WorkerNeeds) -> tuple[str, str] | None:
    """(what is wrong, the fix) when `count` workers cannot serve this config, else None."""
    if count == 1:
        return None
    if needs.unix_listen:
        return (
            f"{count} workers cannot share a Unix socket (only TCP ports are shared)",
            "set workers: 1, or listen (and http_listen) on HOST:PORT",
        )
    if needs.writes_sessions and not needs.has_redis:
        return (
            f"{count} workers would each keep their own sessions in memory, so a session"
            " created or revoked in one would not be seen by the others",
            "set redis_url, or workers: 1",
        )
    return None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, quota) if quota is not None else cpus)


def _parse(raw: object) -> int | None:
    if raw == "auto":
        return min(usable_cpus(), MAX_WORKERS)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_WORKERS:
        return None
    return raw


def _cgroup_cpu_quota(path: Path = _CGROUP_CPU_MAX) -> int | None:
    """CPUs granted by cgroup v2's `cpu.max` ("QUOTA PERIOD", or "max PERIOD": no limit),
    rounded up: a pod limited to 1.5 CPUs gets 2 workers."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))
