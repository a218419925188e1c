"""Liveness and readiness: what `/healthz`, `/readyz` and gRPC health report.

Alive means the process runs its event loop. Ready means it can decide as configured:
policies loaded, Redis answering (when configured), the KMS wrapping and unwrapping (when
configured), the audit spool with room left, and not shutting down. Each check has a
short timeout, and slow ones (the KMS may be an HSM) are cached, so a probe never costs
more than a few milliseconds of the loop nor hammers a dependency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["CHECK_TIMEOUT", "HealthCheck", "Readiness", "ReadinessReport", "Result"]

CHECK_TIMEOUT = 1.0  # seconds; a dependency slower than this is not ready for Checks

# A check returns (ready, detail): what it saw, or what is wrong (no secrets in it).
Probe = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str
    probe: Probe
    cache_seconds: float = 1.0  # how long a result is reused


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    results: tuple[Result, ...]

    @property
    def ready(self) -> bool:
        return all(result.ok for result in self.results)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "checks": {r.name: {"ok": r.ok, "detail": r.detail} for r in self.results},
        }


class Readiness:
    """Runs the checks (at once, each with its timeout); `draining` makes it not ready."""

    def __init__(
        self,
        checks: Sequence[HealthCheck],
        *,
        timeout: float = CHECK_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = tuple(checks)
        self._timeout = timeout
        self._clock = clock
        self._cached: dict[str, tuple[float, Result]] = {}
        self._running: dict[str, asyncio.Task[Result]] = {}
        self.draining = False
        self.last_ready: bool | None = None  # what the last gRPC health update said

    async def report(self) -> ReadinessReport:
        results = await asyncio.gather(*(self._result(check) for check in self._checks))
        draining = Result("shutdown", not self.draining, "draining" if self.draining else "")
        return ReadinessReport((*results, draining))

    async def _result(self, check: HealthCheck) -> Result:
        now = self._clock()
        cached = self._cached.get(check.name)
        if cached is not None and now - cached[0] < check.cache_seconds:
            return cached[1]
        # Probes that arrive together share one run: 40 /readyz at once are one PING (or
        # one HSM wrap), and a probe client that hangs up does not cancel it for the rest.
        running = self._running.get(check.name)
        if running is None:
            running = asyncio.ensure_future(self._probe(check, now))
            self._running[check.name] = running
            running.add_done_callback(lambda _: self._running.pop(check.name, None))
        return await asyncio.shield(running)

    async def _probe(self, check: HealthCheck, now: float) -> Result:
        try:
            ok, detail = await asyncio.wait_for(check.probe(), self._timeout)
        except TimeoutError:
            ok, detail = False, f"no answer within {self._timeout:g} s"
        except Exception as exc:  # a probe that fails is a failed check, never a crash
            ok, detail = False, f"{type(exc).__name__}: {_first_line(exc)}"
        result = Result(check.name, ok, detail)
        self._cached[check.name] = (now, result)
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "failed"
