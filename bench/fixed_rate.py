"""Load at a fixed request rate with Debian's h2load (`h2load --rps`, package nghttp2-client).

wrk drives a closed loop (as fast as the server answers), which measures capacity; a
fixed rate measures latency at a load the machine can carry, the way OPA-Envoy publishes
its 1,000 req/s figures.

How h2load paces (1.52, measured here): `--rps` is per client, and each client's rate
timer ticks at 100 Hz whatever -c, -m and --rps say (200 bursts in 2 s at 1,000 req/s
with 1 or 10 clients), so the load arrives as rate/100 requests every 10 ms, not one
every 1/rate s. Clients started together tick together: 32 clients at 31.25 req/s each
sent 63 bursts of 32 in 2 s (p50 2.3 ms against Envoy alone) where 10 clients at 100 each
sent 200 bursts of 10 (p50 1.0 ms). So the harness runs one client per 100 req/s, each
sending one request per tick: the smoothest load h2load's --rps makes. HTTP/1.1
(`--h1`), as wrk speaks to the client Envoy, so both modes cross the same path; one
request in flight per connection, and a client that falls behind sends the requests it
owes as soon as a response frees it (h2load keeps count), so a slow server shows up as
latency. `-D` (duration) and --rps combine; -D and -r (connection rate) do not.

`--log-file` writes one tab-separated row per request: start time (µs since the epoch),
HTTP status (-1 for a failed stream), µs until the end of the response. End-to-end
quantiles are read off those rows (nearest rank), so they are exact, not bucketed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "QUANTILES",
    "TICK_HZ",
    "FixedRateError",
    "FixedRateResult",
    "LoggedRequest",
    "clients_for",
    "h2load_argv",
    "h2load_missing",
    "nearest_rank",
    "parse_h2load_log",
    "result_from_log",
    "run_h2load",
    "warm_up",
]

QUANTILES = (0.5, 0.9, 0.99)
TICK_HZ = 100  # h2load's --rps timer (see above)


class FixedRateError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    start_us: int
    status: int  # -1: the stream failed (reset, timeout)
    duration_us: int


@dataclass(frozen=True, slots=True)
class FixedRateResult:
    rate: int  # the requested req/s
    achieved_rps: float  # completed requests / measured seconds
    requests: int  # rows in the log
    failed: int  # streams that failed (status -1)
    unexpected: int  # completed with a status other than the expected one
    latency_ms: dict[str, float | None]  # "p50"/"p90"/"p99" end to end, expected-status rows


def clients_for(rate: int) -> int:
    """One connection per TICK_HZ req/s: one request per client per tick."""
    return max(1, math.ceil(rate / TICK_HZ))


def h2load_argv(url: str, *, rate: int, duration: int, log_file: Path | None = None) -> list[str]:
    """h2load at `rate` req/s in total for `duration` seconds."""
    clients = clients_for(rate)
    argv = [
        "h2load",
        "--h1",
        f"--clients={clients}",
        "--threads=1",  # 1,000 req/s is little work; a second thread only takes a core
        f"--rps={rate / clients:g}",
        f"--duration={duration}",
        "--connection-inactivity-timeout=5",
    ]
    if log_file is not None:
        argv.append(f"--log-file={log_file}")
    return [*argv, url]


def parse_h2load_log(text: str) -> list[LoggedRequest]:
    """The rows of an h2load --log-file; extra columns (a newer h2load) are ignored."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            rows.append(LoggedRequest(int(fields[0]), int(fields[1]), int(fields[2])))
        except (IndexError, ValueError):
            detail = f"h2load log line {number} is not start/status/µs: {line!r}"
            raise FixedRateError(detail) from None
    return rows


def nearest_rank(q: float, values: Sequence[float]) -> float | None:
    """The q-quantile of `values` by nearest rank (the smallest value with at least q of
    all values at or below it); None for no values."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"quantile must be within (0, 1], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def result_from_log(
    rows: Iterable[LoggedRequest], *, rate: int, seconds: float, expected_status: int
) -> FixedRateResult:
    """Summarise one measured run: latency over the requests that answered as expected."""
    rows = list(rows)
    failed = sum(1 for r in rows if r.status < 0)
    good = [r.duration_us / 1000 for r in rows if r.status == expected_status]
    unexpected = len(rows) - failed - len(good)
    latency = {f"p{round(q * 100)}": _rounded(nearest_rank(q, good)) for q in QUANTILES}
    return FixedRateResult(
        rate=rate,
        achieved_rps=round((len(rows) - failed) / seconds, 1) if seconds > 0 else 0.0,
        requests=len(rows),
        failed=failed,
        unexpected=unexpected,
        latency_ms=latency,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_h2load(
    url: str, *, rate: int, duration: int, expected_status: int, log_file: Path
) -> FixedRateResult:
    """One measured run; the per-request log is kept at `log_file`."""
    log_file.unlink(missing_ok=True)  # h2load appends to an existing log
    argv = h2load_argv(url, rate=rate, duration=duration, log_file=log_file)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise FixedRateError(f"h2load exited {done.returncode}: {done.stderr.strip()[-500:]}")
    rows = parse_h2load_log(log_file.read_text())
    return result_from_log(rows, rate=rate, seconds=duration, expected_status=expected_status)


def warm_up(url: str, *, rate: int, duration: int) -> None:
    """The same load, unmeasured (connections opened, caches and clusters warm)."""
    if duration <= 0:
        return
    argv = h2load_argv(url, rate=rate, duration=duration)
    subprocess.run(argv, capture_output=True, timeout=duration + 30, check=False)


def h2load_missing() -> bool:
    return shutil.which("h2load") is None
