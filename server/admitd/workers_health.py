"""/healthz and /readyz of a supervised admitd, answered from its workers' own answers.

Each worker serves /healthz and /readyz on a private socket, from the event loop that
runs its Checks. The supervisor asks every running worker and answers:

- /readyz 200 when at least one worker serves, every worker that answers is ready on
  every check (a check fails if it fails in any worker, and its detail names the
  worker), no serving worker is silent, and the supervisor is not shutting down. A worker
  that is restarting has closed its share of the port, so it only lowers capacity: it is
  reported (check `workers`), not failed.
- /healthz 200 while the supervisor runs and every serving worker answers its /healthz;
  503 when one does not (its event loop is stuck, and the connections the kernel gives it
  would hang). A worker that died is the supervisor's to restart, not the liveness probe's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from admitd.workers_metrics import WorkerView

__all__ = ["Answer", "WorkerProbes", "liveness", "readiness"]

PROBE_TIMEOUT = 2.0  # seconds; a worker's readiness checks time out after 1 s themselves

JsonObject = dict[str, object]


@dataclass(frozen=True, slots=True)
class Answer:
    """One worker's answer to a probe (None: it did not answer in time)."""

    view: WorkerView
    body: Mapping[str, object] | None


class WorkerProbes:
    """Asks workers over their private sockets (one connector each, no keep-alive: a
    restarted worker is a new listener on the same path)."""

    def __init__(self, sockets: Sequence[Path]) -> None:
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(path), force_close=True),
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
            )
            for path in sockets
        ]

    async def ask_all(self, views: Sequence[WorkerView], path: str) -> list[Answer]:
        """Every running worker's JSON answer to `path` (at once)."""
        bodies = await asyncio.gather(*(self._ask(view, path) for view in views))
        return [Answer(view, body) for view, body in zip(views, bodies, strict=True)]

    async def text(self, index: int, path: str) -> bytes | None:
        """Worker `index`'s 200 answer to `path`, or None."""
        return await self._get(index, path, accept=(200,))

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()

    async def _ask(self, view: WorkerView, path: str) -> Mapping[str, object] | None:
        if view.pid is None or view.state not in ("starting", "ready"):
            return None
        # /readyz answers 503 with the same JSON when not ready: both are answers.
        body = await self._get(view.index, path, accept=(200, 503))
        return _object(body) if body is not None else None

    async def _get(self, index: int, path: str, accept: tuple[int, ...]) -> bytes | None:
        try:
            async with self._sessions[index].get(f"http://worker{path}") as reply:
                return await reply.read() if reply.status in accept else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None


def readiness(answers: Sequence[Answer], *, draining: bool) -> tuple[int, JsonObject]:
    """(status, body) of the supervisor's /readyz."""
    checks: dict[str, JsonObject] = {}
    for answer in answers:
        for name, result in _checks(answer.body).items():
            _merge_check(checks, name, result, answer.view.index)
    serving = [a for a in answers if a.view.state == "ready"]
    answering = [a for a in serving if a.body is not None]
    silent = [a.view.index for a in serving if a.body is None]
    detail = f"{len(answering)} of {len(answers)} workers ready"
    detail += "".join(f"; worker {i} did not answer" for i in silent)
    detail += "".join(_not_serving(a.view) for a in answers if a.view.state != "ready")
    checks["workers"] = {"ok": bool(answering) and not silent, "detail": detail}
    if draining:
        checks["shutdown"] = {"ok": False, "detail": "draining"}
    ready = all(check["ok"] for check in checks.values())
    body: JsonObject = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "workers": _workers(answers),
    }
    return (200 if ready else 503), body


def liveness(answers: Sequence[Answer]) -> tuple[int, JsonObject]:
    """(status, body) of the supervisor's /healthz."""
    stuck = [a for a in answers if a.view.state == "ready" and a.body is None]
    body: JsonObject = {"status": "stuck" if stuck else "alive", "workers": _workers(answers)}
    return (503 if stuck else 200), body


def _merge_check(checks: dict[str, JsonObject], name: str, result: JsonObject, index: int) -> None:
    ok, detail = result.get("ok") is True, str(result.get("detail", ""))
    seen = checks.get(name)
    if seen is None:
        checks[name] = {"ok": ok, "detail": detail if ok else f"worker {index}: {detail}"}
    elif seen["ok"] and not ok:
        checks[name] = {"ok": False, "detail": f"worker {index}: {detail}"}


def _checks(body: Mapping[str, object] | None) -> dict[str, JsonObject]:
    checks = body.get("checks") if body is not None else None
    if not isinstance(checks, dict):
        return {}
    return {str(k): v for k, v in checks.items() if isinstance(v, dict)}


def _not_serving(view: WorkerView) -> str:
    exit_note = f" (last exit {view.last_exit})" if view.last_exit is not None else ""
    return f"; worker {view.index} {view.state}{exit_note}"


def _workers(answers: Sequence[Answer]) -> JsonObject:
    return {
        str(a.view.index): {"state": a.view.state, "pid": a.view.pid, "restarts": a.view.restarts}
        for a in answers
    }


def _object(body: bytes) -> Mapping[str, object] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
