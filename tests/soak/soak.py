"""One soak: the reliability stack (Redis, `admitd serve` with audit and device risk, the
real Envoy), a population of distinct inputs, a steady load, admitd sampled throughout,
then the audit chain verified.

Two sizes: CI (a minute at 100 req/s, tests/soak/test_soak.py) and FULL (ten minutes at
150 req/s, tests/soak/run_soak.py). Each sizes its distinct inputs against admitd's cache
bounds: a bound the run can pass within its warm-up is passed and stays passed (a cache
that ignored it would keep growing after the warm-up); one it cannot is held below its
bound by inputs that cycle, so that cache is flat after the first cycle.

| cache (bound) | CI | FULL |
| --- | --- | --- |
| certificate verdicts (`tls.verify_cache_size`, lowered) | passed: 64 | passed: 500 |
| verified JWTs (`jwt.cache_size`, lowered) | passed: 64 | passed: 500 |
| Check responses (4,096, cleared when full) | below (still filling) | passed |
| risk assessments reused (10,000) | below | passed |
| sessions, found or not (100,000, cleared when full) | below | below |
| refused sightings (10,000), user revocation times (100,000) | below | below |
| last-seen batch (flushed every second) | one second's sessions | the same |
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.pki_fixtures import PkiSet
from tests.reliability.stack import STREAM, ReliabilityStack, StackSettings, start_stack
from tests.soak.audit_tally import AuditTally, audit_tally
from tests.soak.issuer import LocalIssuer
from tests.soak.population import Population, build_population
from tests.soak.sampler import Sample, Sampler
from tests.soak.traffic import Tally, TrafficShape, run_traffic
from tests.soak.verdict import Limits, Verdict, judge

__all__ = ["CI", "FULL", "SIZES", "SoakResult", "SoakSize", "run_soak"]


@dataclass(frozen=True, slots=True)
class SoakSize:
    name: str
    shape: TrafficShape
    limits: Limits
    sample_every_s: float
    viewers: int
    finance: int
    stale: int
    jwt_users: int
    forged: int
    pinned: int
    verify_cache_size: int  # tls.verify_cache_size, lowered below the fresh certificates
    jwt_cache_size: int  # jwt.cache_size, lowered below the fresh tokens


CI = SoakSize(
    name="ci",
    shape=TrafficShape(
        rate=100, seconds=60, uses_per_fresh_cert=2, agent_variants=2, max_clients=48
    ),
    # Generous for a short run on a shared 2-core machine (clean runs: -5 to +2.2 MiB/min
    # over B); a synthetic leak of 4 MiB/min in admitd fails it, one of 2 MiB/min passes.
    limits=Limits(warm_up_s=25, slope_mib_per_min=4.0, growth_mib=3.0),
    sample_every_s=1.0,
    viewers=400,
    finance=60,
    stale=60,
    jwt_users=100,
    forged=100,
    pinned=32,
    verify_cache_size=64,
    jwt_cache_size=64,
)

# 150 req/s: with this many distinct users nearly every session Check misses the 5-s
# session cache and the 1-s risk reuse, ~3.5 ms of admitd CPU each on the 2-core host
# (about half a core here); 300 req/s would need more than the one core a process has.
FULL = SoakSize(
    name="full",
    shape=TrafficShape(
        rate=150, seconds=600, uses_per_fresh_cert=1, agent_variants=3, max_clients=96
    ),
    # Every bound below is passed by ~140 s (the risk-reuse cache's 10,000, the last);
    # a verdict-cache entry is ~1.8 KiB, so that cache with its bound ignored would grow
    # ~2.4 MiB/min here. The response cache (4,096, cleared when full) is overrun by the
    # users in rotation: a ~17 MiB sawtooth every ~40 s, hence the slope over the whole
    # steady window (a fit over 210 s could tilt by ~0.8 MiB/min with its phase).
    limits=Limits(warm_up_s=180, slope_mib_per_min=1.0, growth_mib=4.0, slope_over_steady=True),
    sample_every_s=5.0,
    viewers=4000,
    finance=400,
    stale=400,
    jwt_users=600,
    forged=600,
    pinned=64,
    verify_cache_size=500,
    jwt_cache_size=500,
)

SIZES = {size.name: size for size in (CI, FULL)}


@dataclass
class SoakResult:
    size: SoakSize
    population: Population
    tally: Tally
    samples: list[Sample]
    verdict: Verdict
    audit: AuditTally
    audit_entries: int  # stream records of type "entry"
    chain_ok: bool
    load_seconds: float
    notes: list[str] = field(default_factory=list)


def run_soak(pki: PkiSet, work: Path, size: SoakSize) -> SoakResult:
    with contextlib.ExitStack() as cleanup:
        issuer = LocalIssuer().start()
        cleanup.callback(issuer.stop)
        stack = start_stack(pki, work, StackSettings())
        cleanup.callback(stack.stop)
        _configure(stack, size, issuer)
        population = build_population(
            pki,
            stack.redis.url,
            work / "population",
            viewers=size.viewers,
            finance=size.finance,
            stale=size.stale,
            jwt_users=size.jwt_users,
            forged=size.forged,
            pinned=size.pinned,
            fresh=size.shape.fresh_certs_needed(),
        )
        assert stack.admitd_process is not None
        progress = [0]
        sampler = Sampler(
            stack.admitd_process.pid,
            size.sample_every_s,
            progress,
            stack.redis.port,
            f"http://127.0.0.1:{stack.metrics_port}/metrics",
        )
        started = time.monotonic()
        sampler.start(started)
        try:
            tally = asyncio.run(
                run_traffic(
                    f"https://localhost:{stack.https_port}",
                    pki.directory / "root.pem",
                    population,
                    size.shape,
                    issuer.token,
                    progress=progress,
                )
            )
        finally:
            samples = sampler.stop()
        load_seconds = time.monotonic() - started
        return _finish(stack, size, population, tally, samples, load_seconds)


def _configure(stack: ReliabilityStack, size: SoakSize, issuer: LocalIssuer) -> None:
    """The stack's config with the lowered cache bounds and the JWT issuer; admitd
    restarted to read it."""
    config = yaml.safe_load(stack.config_file.read_text())
    config["tls"]["verify_cache_size"] = size.verify_cache_size
    config["jwt"] = issuer.config(size.jwt_cache_size)
    stack.stop_admitd()
    stack.config_file.write_text(yaml.safe_dump(config))
    stack.start_admitd()


def _finish(
    stack: ReliabilityStack,
    size: SoakSize,
    population: Population,
    tally: Tally,
    samples: list[Sample],
    load_seconds: float,
) -> SoakResult:
    verdict = judge(samples, size.limits)
    stack.wait_audit_settled()
    entries = stack.export_audit()
    audit = audit_tally(stack.admitd_log, tally.risky_admits, entries)
    verified = stack.verify_audit()
    result = SoakResult(
        size,
        population,
        tally,
        samples,
        verdict,
        audit,
        sum(1 for e in entries if e.get("type") == "entry"),
        verified.returncode == 0,
        load_seconds,
    )
    if not result.chain_ok:
        result.notes.append("audit verify: " + (verified.stdout + verified.stderr)[-400:])
    result.notes.append(_redis_footprint(stack))
    return result


def _redis_footprint(stack: ReliabilityStack) -> str:
    client = stack.redis_client()
    try:
        memory = client.info("memory")
        return (
            f"Redis at the end: {client.dbsize()} keys, audit stream {client.xlen(STREAM)} "
            f"records, {memory['used_memory_human']} used"
        )
    finally:
        client.close()
