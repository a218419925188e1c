"""Fuzz Check through a running `admitd serve`: mutated CheckRequests over grpc.aio.

The server is a real process on a free loopback port with the certificate-only policy
(tests/fuzz/oracle.py). Each request is a valid one (alice's or bob's certificate in
`attributes.source.certificate`, or the public route) with one to three mutations; every
100th is sent unmutated as a control, which must be admitted. Three counts, all must be 0:

- crashes: the server process exited;
- wrong allows: admitted, although the independent oracle says no correct admitd could;
- internal errors: `authorization_unavailable` (or a 503), a gRPC error, a Check over a
  second, or a "Check failed; answering fail-closed" line in the server's log.

CI sends 2,000 requests; `ADMITD_FUZZ_COUNT` (or `--fuzz-count`) sets the count, and
`ADMITD_FUZZ_SEED` the seed (printed, so a run can be repeated). `make fuzz-long` sends
1,000,000. The run is bounded in time too (`ADMITD_FUZZ_SECONDS`).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from tests.fuzz.budget import HANG_SECONDS, grpc_fuzz_count, grpc_fuzz_seconds
from tests.fuzz.check_requests import RequestSpec, mutated
from tests.fuzz.oracle import CERT_ONLY_POLICY, CertOnlyOracle
from tests.fuzz.responses import FAIL_CLOSED_LOG, outcome_of
from tests.pki_fixtures import PkiSet, url_pem

CONCURRENCY = 8
CONTROL_EVERY = 100


@dataclass
class Tally:
    sent: int = 0
    crashes: int = 0
    wrong_allows: int = 0
    internal_errors: int = 0
    controls: int = 0
    controls_denied: int = 0
    allowed: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, detail: str) -> None:
        seen = self.examples.setdefault(kind, [])
        if len(seen) < 5:
            seen.append(detail if kind == "wrong allow" else detail[:600])

    def line(self, seconds: float, seed: int) -> str:
        rate = self.sent / seconds if seconds else 0.0
        return (
            f"grpc Check fuzz: {self.sent} requests in {seconds:.1f} s ({rate:.0f}/s, seed {seed}):"
            f" crashes {self.crashes}, wrong allows {self.wrong_allows},"
            f" internal errors {self.internal_errors};"
            f" controls admitted {self.controls - self.controls_denied}/{self.controls},"
            f" mutated admitted {self.allowed}"
        )


@dataclass(frozen=True)
class Server:
    port: int
    group: ProcessGroup


@pytest.fixture(scope="module")
def server(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("grpc-fuzz")
    (work / "policies.yaml").write_text(CERT_ONLY_POLICY)
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "metrics_listen": "",
        "policies": "policies.yaml",
        "log_level": "warning",  # a decision line per request would be 500 MB per million
        "tls": {"trust_bundle": str(pki.trust_bundle), "crl_files": [str(pki.crl)]},
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    with ProcessGroup(work / "logs") as group:
        argv = [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")]
        # admitd ignores the fuzz suite's ADMITD_FUZZ_* (config.py): one is always set, so
        # a server that read it as an override (unknown key `fuzz_marker`) would not start.
        process = group.start("admitd", argv, env={"ADMITD_FUZZ_MARKER": "not a config key"})
        try:
            wait_for_port(port, process=process)
        except (RuntimeError, TimeoutError):
            print(*group.log_tail("admitd"), sep="\n")
            raise
        yield Server(port, group)


def _goldens(pki: PkiSet) -> list[RequestSpec]:
    return [
        RequestSpec.golden(url_pem(pki.alice)),
        RequestSpec.golden(url_pem(pki.bob), path="/api/reports?year=2025"),
        RequestSpec.golden(url_pem(pki.alice), path="/admin/users"),
        RequestSpec.golden("", path="/healthz"),
    ]


async def test_mutated_checks_through_a_running_server(
    server: Server,
    pki: PkiSet,
    oracle: CertOnlyOracle,
    other_certificates: tuple[str, ...],
    request: pytest.FixtureRequest,
) -> None:
    count = grpc_fuzz_count(request.config)
    seed = int(os.environ.get("ADMITD_FUZZ_SEED") or secrets.randbelow(2**32))
    rnd = random.Random(seed)
    goldens = _goldens(pki)
    tally = Tally()
    queue: asyncio.Queue[tuple[int, RequestSpec] | None] = asyncio.Queue(maxsize=CONCURRENCY * 4)
    started = time.monotonic()
    deadline = started + grpc_fuzz_seconds(count)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)

        async def worker() -> None:
            while (item := await queue.get()) is not None:
                await _send(stub, *item, oracle, tally)

        workers = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
        for index in range(count):
            if time.monotonic() > deadline or server.group.first_exited() is not None:
                break
            golden = rnd.choice(goldens)
            is_control = index % CONTROL_EVERY == 0
            spec = (
                golden
                if is_control
                else mutated(golden, rnd, other_certificates=other_certificates)
            )
            await queue.put((index, spec))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    seconds = time.monotonic() - started

    exited = server.group.first_exited()
    if exited is not None:
        tally.crashes += 1
        tally.note("crash", f"exit code {exited[1]}: {server.group.log_tail('admitd')}")
    logged = server.group.log_text("admitd").count(FAIL_CLOSED_LOG)
    if logged:
        tally.internal_errors += logged
        tally.note("fail-closed log", "\n".join(server.group.log_tail("admitd", 40)))
    print(tally.line(seconds, seed))
    for kind, details in tally.examples.items():
        print(f"  {kind}:", *details, sep="\n    ")
    assert tally.sent == count, (
        f"stopped after {tally.sent} of {count} (time or crash): {tally.line(seconds, seed)}"
    )
    assert (tally.crashes, tally.wrong_allows, tally.internal_errors) == (0, 0, 0), tally.line(
        seconds, seed
    )
    assert tally.controls and tally.controls_denied == 0, "unmutated requests were refused"


async def _send(
    stub: external_auth_pb2_grpc.AuthorizationStub,
    index: int,
    spec: RequestSpec,
    oracle: CertOnlyOracle,
    tally: Tally,
) -> None:
    tally.sent += 1
    is_control = not spec.mutations
    began = time.monotonic()
    try:
        response = await stub.Check(spec.to_proto(), timeout=5.0)
    except grpc.aio.AioRpcError as exc:
        tally.internal_errors += 1
        tally.note("grpc error", f"#{index} {exc.code().name} {exc.details()} {spec.mutations}")
        return
    if time.monotonic() - began > HANG_SECONDS * 3:  # loaded machine: a hang is far past this
        tally.internal_errors += 1
        tally.note("slow", f"#{index} {time.monotonic() - began:.2f} s {spec.mutations}")
    outcome = outcome_of(response)
    if outcome.is_internal_error:
        tally.internal_errors += 1
        tally.note("internal error", f"#{index} {outcome} {spec!r}")
    if is_control:
        tally.controls += 1
        tally.controls_denied += not outcome.allowed
        return
    if outcome.allowed:
        tally.allowed += 1
        may = oracle.may_allow(
            method=spec.method,
            path=spec.path,
            scheme=spec.scheme,
            headers=spec.header_pairs(),
            certificate=spec.certificate,
            route_name=spec.context_extensions.get("admitd_route", ""),
        )
        if not may:
            tally.wrong_allows += 1
            tally.note("wrong allow", f"#{index} {spec!r}")
