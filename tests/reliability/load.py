"""A bounded-rate load generator through Envoy, with an oracle for every request.

Each request is one `Probe` (a route and a set of credentials) and carries a unique path,
so it can be joined with admitd's decision log. The oracle says what a healthy system
must answer: `ADMIT`, `REFUSE`, or `EITHER` (a session whose store was being emptied).
Open loop: request i leaves at start + i / rate, whatever the earlier ones are doing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import aiohttp

__all__ = ["Expect", "LoadResult", "Outcome", "Probe", "ProbeMix", "run_load"]

_REQUEST_TIMEOUT = 10.0  # seconds; Envoy answers far sooner unless the host is starved
_MAX_IN_FLIGHT = 1000  # beyond this the client, not the system, would be measured


class Expect(StrEnum):
    ADMIT = "admit"
    REFUSE = "refuse"
    EITHER = "either"


@dataclass
class Probe:
    """One kind of request. `kind` groups probes for the recovery figure (public, cert,
    session, privileged); `must_refuse` probes are never admitted by a healthy system.
    A probe that should be admitted is so only while `valid` (its session exists); once
    `refused_from` (monotonic) has passed, refusing it is the only correct answer."""

    name: str
    kind: str
    path_prefix: str
    cert: tuple[Path, Path] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    must_refuse: bool = False
    valid_until: float = float("inf")
    refused_from: float = float("inf")

    def expect(self, sent: float) -> Expect:
        if self.must_refuse or sent >= self.refused_from:
            return Expect.REFUSE
        return Expect.ADMIT if sent < self.valid_until else Expect.EITHER


@dataclass(frozen=True, slots=True)
class Outcome:
    seq: int
    probe: Probe
    path: str
    sent: float  # monotonic
    done: float  # monotonic
    status: int  # 0: no HTTP answer (see `error`)
    expect: Expect
    admitd_reason: str  # x-admitd-reason: admitd itself refused (Envoy's own 503 has none)
    risk_level: str  # on an admit, the risk level the upstream saw
    error: str = ""

    @property
    def admitted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def wrongly_admitted(self) -> bool:
        return self.admitted and self.expect is Expect.REFUSE


@dataclass
class ProbeMix:
    """The probes the load cycles through; the harness may swap them while it runs
    (after Redis came back empty, say, it logs fresh sessions in)."""

    probes: list[Probe]

    def pick(self, seq: int) -> Probe:
        return self.probes[seq % len(self.probes)]

    def add(self, new: Sequence[Probe]) -> None:
        """Cycle through `new` as well; the old probes keep coming (their credentials
        may now have to be refused)."""
        self.probes = [*self.probes, *new]


@dataclass
class LoadResult:
    outcomes: list[Outcome]
    skipped: int  # requests not sent: the client had _MAX_IN_FLIGHT outstanding
    started: float
    ended: float

    def merged(self, other: LoadResult) -> LoadResult:
        """Both loads' requests as one (they ran side by side, with paths of their own)."""
        outcomes = sorted([*self.outcomes, *other.outcomes], key=lambda o: o.sent)
        return LoadResult(
            outcomes,
            self.skipped + other.skipped,
            min(self.started, other.started),
            max(self.ended, other.ended),
        )


async def run_load(
    base_url: str, ca_file: Path, mix: ProbeMix, *, rate: float, seconds: float, tag: str = ""
) -> LoadResult:
    """`rate` requests a second for `seconds` (bounded: rate * seconds requests at most).
    `tag` goes into every path, so two loads of one run (a warm-up, a flood) never share
    a path: each request's decision-log line is its own."""
    total = int(rate * seconds)
    sessions: dict[tuple[Path, Path] | None, aiohttp.ClientSession] = {}
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    skipped = 0
    started = time.monotonic()
    try:
        for seq in range(total):
            await _sleep_until(started + seq / rate)
            if len(tasks) >= _MAX_IN_FLIGHT:
                skipped += 1
                continue
            probe = mix.pick(seq)
            client = sessions.get(probe.cert) or _new_session(sessions, probe.cert, ca_file)
            task = asyncio.create_task(_one(client, base_url, probe, seq, tag, outcomes))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=_REQUEST_TIMEOUT + 5)
    finally:
        for task in tasks:
            task.cancel()
        for client in sessions.values():
            await client.close()
    outcomes.sort(key=lambda o: o.seq)
    return LoadResult(outcomes, skipped, started, time.monotonic())


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _new_session(
    sessions: dict[tuple[Path, Path] | None, aiohttp.ClientSession],
    cert: tuple[Path, Path] | None,
    ca_file: Path,
) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    client = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT)
    )
    sessions[cert] = client
    return client


async def _one(
    client: aiohttp.ClientSession,
    base_url: str,
    probe: Probe,
    seq: int,
    tag: str,
    out: list[Outcome],
) -> None:
    path = f"{probe.path_prefix}{probe.name}/{tag}{seq}"
    sent = time.monotonic()
    expect = probe.expect(sent)
    status, reason, risk, error = 0, "", "", ""
    try:
        async with client.get(base_url + path, headers=probe.headers) as reply:
            status = reply.status
            reason = reply.headers.get("x-admitd-reason", "")
            body = await reply.read()
            if 200 <= status < 300:
                risk = _upstream_risk(body)
    except TimeoutError:
        error = "timeout"
    except aiohttp.ClientError as exc:
        error = type(exc).__name__
    out.append(
        Outcome(seq, probe, path, sent, time.monotonic(), status, expect, reason, risk, error)
    )


def _upstream_risk(body: bytes) -> str:
    try:
        headers = json.loads(body).get("headers", {})
    except ValueError:
        return ""
    return str(headers.get("x-admitd-risk-level", "")) if isinstance(headers, dict) else ""
