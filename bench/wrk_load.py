"""Closed-loop load with wrk (Debian's build): one run, or several at the same time."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

__all__ = ["WrkError", "WrkResult", "WrkRun", "parse_wrk", "run_wrk", "run_wrk_together"]

HOST = "127.0.0.1"


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True, slots=True)
class WrkRun:
    port: int
    path: str
    seconds: int
    connections: int
    threads: int

    def argv(self) -> list[str]:
        return [
            "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{self.seconds}s",
            "--timeout",
            "5s",
            "--latency",
            f"http://{HOST}:{self.port}{self.path}",
        ]


def run_wrk(run: WrkRun) -> WrkResult:
    return run_wrk_together([run])[0]


def run_wrk_together(runs: list[WrkRun]) -> list[WrkResult]:
    """Start every run at once and wait for all (the mixed-load variant: two clients)."""
    started = [
        subprocess.Popen(r.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for r in runs
    ]
    outputs = []
    try:
        for run, process in zip(runs, started, strict=True):
            stdout, stderr = process.communicate(timeout=run.seconds + 30)
            if process.returncode != 0:
                raise WrkError(f"wrk exited {process.returncode}: {stderr.strip()}")
            outputs.append(stdout)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [parse_wrk(text) for text in outputs]


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(text: str) -> WrkResult:
    return WrkResult(
        requests_per_s=float(_search(r"Requests/sec:\s+([\d.]+)", text)),
        p50_ms=_latency_ms("50", text),
        p99_ms=_latency_ms("99", text),
        requests=int(_search(r"(\d+) requests in", text)),
        non_2xx=int(_search(r"Non-2xx or 3xx responses:\s+(\d+)", text, default="0")),
        socket_errors=_socket_errors(text),
    )


def _latency_ms(percentile: str, text: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if not match:
        raise WrkError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _socket_errors(text: str) -> int:
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return sum(int(n) for n in match.groups()) if match else 0


def _search(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match:
        return match.group(1)
    if default is not None:
        return default
    raise WrkError(f"{pattern!r} not found in wrk output:\n{text}")
