"""The soak's load: a steady open-loop rate through Envoy, every request from a fresh mix.

Request i is of kind PATTERN[i % len(PATTERN)]; each kind walks through its own inputs
(users and their user-agent variants, forged tokens, a fresh certificate every few
requests, a fresh JWT every time), so the distinct inputs keep coming for the whole run.
Only counts are kept (no per-request record): the client's own memory stays flat too.

Each client certificate needs its own TLS connection; the client keeps at most
`max_clients` of them open (least recently used closed first, once idle), so a run of
thousands of certificates costs Envoy a handshake per certificate, not an open connection.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.soak.population import CertFiles, JwtUser, Population, SoakUser

__all__ = ["ADMIT", "PATTERN", "REFUSE", "Mint", "Tally", "TrafficShape", "run_traffic"]

Mint = Callable[[str, str, int], str]  # (user, organisation, serial) -> a fresh JWT

# 20 slots: what a realistic edge sees most (sessions), plus every kind of refusal.
PATTERN = (
    *("session",) * 9,
    "jwt",
    *("privileged",) * 2,
    "step-up",
    *("wrong-cert",) * 3,
    "cert-ok",
    "forged",
    *("public",) * 2,
)
ADMIT = frozenset({"session", "jwt", "privileged", "cert-ok", "public"})
REFUSE = frozenset({"step-up", "wrong-cert", "forged"})

_REQUEST_TIMEOUT = 10.0
_MAX_IN_FLIGHT = 1000  # beyond this the client, not admitd, would be measured
_WRONG_ADMIT_EXAMPLES = 20


@dataclass(frozen=True, slots=True)
class TrafficShape:
    rate: float  # requests a second
    seconds: float
    uses_per_fresh_cert: int  # requests on one fresh certificate before the next one
    agent_variants: int  # user agents per user, cycled (each is a new risk-reuse key)
    max_clients: int  # TLS connections (one per certificate) the client keeps

    @property
    def requests(self) -> int:
        return int(self.rate * self.seconds)

    def kind_count(self, kind: str) -> int:
        """Requests of `kind` the whole run sends."""
        whole, rest = divmod(self.requests, len(PATTERN))
        return whole * PATTERN.count(kind) + PATTERN[:rest].count(kind)

    def fresh_certs_needed(self) -> int:
        return -(-self.kind_count("wrong-cert") // self.uses_per_fresh_cert)


@dataclass
class Tally:
    sent: int = 0
    skipped: int = 0  # not sent: _MAX_IN_FLIGHT outstanding
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status)
    wrong_admits: int = 0
    wrong_examples: list[str] = field(default_factory=list)
    fresh_certs_used: int = 0
    handshakes: int = 0  # client sessions opened (one TLS connection or more each)
    risky_admits: int = 0  # admits the upstream saw at high or critical risk (audited)

    def statuses(self, kind: str) -> Counter[str]:
        return Counter({s: n for (k, s), n in self.by_kind.items() if k == kind})

    def admitted(self, kinds: frozenset[str]) -> int:
        return sum(n for (k, s), n in self.by_kind.items() if k in kinds and s.startswith("2"))

    def answered(self, kinds: frozenset[str]) -> int:
        return sum(n for (k, _), n in self.by_kind.items() if k in kinds)

    def unserved(self) -> int:
        """Requests not served: a 503 (Envoy's ext_authz deadline passed, or a store was
        unavailable to admitd), no answer at all, or not sent (the client was behind)."""
        failed = sum(n for (_, s), n in self.by_kind.items() if s[:1] not in {"2", "4"})
        return failed + self.skipped

    def unserved_share(self) -> float:
        return self.unserved() / max(1, self.sent + self.skipped)


@dataclass
class _Request:
    kind: str
    path: str
    cert: CertFiles | None
    headers: dict[str, str]


class _Planner:
    """Request i -> its kind and inputs; each kind has its own counter."""

    def __init__(self, population: Population, shape: TrafficShape, mint: Mint) -> None:
        self._pop, self._shape, self._mint = population, shape, mint
        self._seen: Counter[str] = Counter()

    def next(self, seq: int) -> _Request:
        kind = PATTERN[seq % len(PATTERN)]
        k = self._seen[kind]
        self._seen[kind] += 1
        # No per-request part: a step-up answer names the path, and a path per request
        # would make every answer a new response-cache entry the run did not mean to make.
        pop, path = self._pop, f"/soak/{kind}"
        if kind == "session":
            user = pop.viewers[k % len(pop.viewers)]
            variant = (k // len(pop.viewers)) % self._shape.agent_variants
            return _Request(kind, "/app" + path, user.cert, _bearer(user, variant))
        if kind == "jwt":
            bearer = pop.jwt_users[k % len(pop.jwt_users)]
            return _Request(kind, "/app" + path, bearer.cert, self._jwt(bearer, k))
        if kind in {"privileged", "step-up"}:
            users = pop.finance if kind == "privileged" else pop.stale
            user = users[k % len(users)]
            return _Request(kind, "/finance" + path, user.cert, _bearer(user, 0))
        if kind == "wrong-cert":  # a fresh identity /cert/ does not allow: 495, audited
            cert = pop.fresh[(k // self._shape.uses_per_fresh_cert) % len(pop.fresh)]
            return _Request(kind, "/cert" + path, cert, {})
        if kind == "cert-ok":
            return _Request(kind, "/cert" + path, pop.alice, {})
        if kind == "forged":
            token = pop.forged[k % len(pop.forged)]
            headers = {"authorization": f"Bearer {token}", "user-agent": "soak/forged"}
            return _Request(kind, "/app" + path, pop.pinned[k % len(pop.pinned)], headers)
        return _Request(kind, "/public" + path, None, {})

    def _jwt(self, user: JwtUser, serial: int) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self._mint(user.user_id, user.organisation, serial)}",
            "x-device-id": user.device_id,
            "user-agent": user.user_agent,
        }

    def fresh_certs_used(self) -> int:
        return -(-self._seen["wrong-cert"] // self._shape.uses_per_fresh_cert)


def _bearer(user: SoakUser, variant: int) -> dict[str, str]:
    agent = user.user_agent if variant == 0 else f"{user.user_agent} v{variant}"
    return {
        "authorization": f"Bearer {user.token}",
        "x-device-id": user.device_id,
        "user-agent": agent,
    }


class _Clients:
    """One aiohttp session per certificate in use, at most `limit` open; an evicted one
    is closed once its last request is done."""

    def __init__(self, ca_file: Path, limit: int, tally: Tally) -> None:
        self._ca, self._limit, self._tally = ca_file, limit, tally
        self._open: OrderedDict[CertFiles | None, aiohttp.ClientSession] = OrderedDict()
        self._busy: Counter[aiohttp.ClientSession] = Counter()
        self._retired: set[aiohttp.ClientSession] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(self, cert: CertFiles | None) -> aiohttp.ClientSession:
        client = self._open.get(cert)
        if client is None:
            client = self._open[cert] = self._new(cert)
            self._evict()
        self._open.move_to_end(cert)
        self._busy[client] += 1
        return client

    def release(self, client: aiohttp.ClientSession) -> None:
        self._busy[client] -= 1
        if self._busy[client] <= 0:
            del self._busy[client]
            if client in self._retired:
                self._retired.discard(client)
                self._close(client)

    async def close(self) -> None:
        for client in [*self._open.values(), *self._retired]:
            await client.close()
        if self._closing:
            await asyncio.wait(self._closing, timeout=5)

    def _new(self, cert: CertFiles | None) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=str(self._ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        self._tally.handshakes += 1
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=8),
            timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT),
        )

    def _evict(self) -> None:
        while len(self._open) > self._limit:
            _, client = self._open.popitem(last=False)
            if self._busy[client] > 0:
                self._retired.add(client)
            else:
                self._busy.pop(client, None)
                self._close(client)

    def _close(self, client: aiohttp.ClientSession) -> None:
        task = asyncio.create_task(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def run_traffic(
    base_url: str,
    ca_file: Path,
    population: Population,
    shape: TrafficShape,
    mint: Mint,
    *,
    progress: list[int] | None = None,
) -> Tally:
    """`shape.rate` requests a second for `shape.seconds`: at most `shape.requests` in all.
    `progress[0]` (when given) is kept at the number of requests sent so far."""
    tally = Tally()
    planner = _Planner(population, shape, mint)
    clients = _Clients(ca_file, shape.max_clients, tally)
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    try:
        for seq in range(shape.requests):
            delay = started + seq / shape.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= _MAX_IN_FLIGHT:
                tally.skipped += 1
                continue
            request = planner.next(seq)
            task = asyncio.create_task(_one(base_url, request, clients, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            tally.sent += 1
            if progress is not None:
                progress[0] = tally.sent
        if tasks:
            await asyncio.wait(tasks, timeout=_REQUEST_TIMEOUT + 5)
    finally:
        for task in tasks:
            task.cancel()
        await clients.close()
    tally.fresh_certs_used = planner.fresh_certs_used()
    return tally


def _risky(body: bytes) -> bool:
    """Whether the echo upstream saw x-admitd-risk-level high or critical."""
    if b"high" not in body and b"critical" not in body:
        return False  # the common case, without parsing
    try:
        headers = json.loads(body).get("headers", {})
    except ValueError:
        return False
    return isinstance(headers, dict) and headers.get("x-admitd-risk-level") in {"high", "critical"}


async def _one(base_url: str, request: _Request, clients: _Clients, tally: Tally) -> None:
    client = clients.acquire(request.cert)
    status = "no answer"
    try:
        async with client.get(base_url + request.path, headers=request.headers) as reply:
            body = await reply.read()
            status = str(reply.status)
            if status.startswith("2") and _risky(body):
                tally.risky_admits += 1
    except TimeoutError:
        status = "timeout"
    except aiohttp.ClientError as exc:
        status = type(exc).__name__
    finally:
        clients.release(client)
    tally.by_kind[request.kind, status] += 1
    if request.kind in REFUSE and status.startswith("2"):
        tally.wrong_admits += 1
        if len(tally.wrong_examples) < _WRONG_ADMIT_EXAMPLES:
            tally.wrong_examples.append(f"{request.kind} {request.path} -> {status}")
