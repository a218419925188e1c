"""Audit log throughput: appends (1 and several replicas sharing one chain) and `verify`.

Run: .venv/bin/python bench/bench_audit.py [--entries 1000000] [--append-entries 40000]
Starts its own redis-server on a free port (no persistence). Prints entries/s for
append with 1 and 4 AuditLog replicas (each its own Redis connection, one event
loop), then fills the stream with `--entries` chained, sealed entries and verifies
them twice: recomputing every digest from the decrypted plaintext, and links only.
Peak RSS is printed to show verification runs in bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admitd.audit import AuditConfig, AuditEntry, AuditLog, ChainHead
from admitd.audit.chain import links_after
from admitd.audit.sealed import entry_opener, seal_entry
from admitd.audit.sources import records_from_stream
from admitd.audit.stream import stream_fields
from admitd.audit.verify import verify_chain
from admitd.envelope import DekCache, Sealer
from admitd.kms import ALIAS_AUDIT_LOG, MemoryKms
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer

STREAM = "admitd:audit"


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        time=1_700_000_000.0 + n,
        event_type="decision.denied",
        decision="deny",
        reason="mfa_step_up_required",
        principal="spiffe://example.org/ns/app/sa/web",
        user=f"user-{n % 5000}",
        organisation="acme",
        session_hash="ab" * 32,
        device_id="device-1234",
        source_ip="203.0.113.7",
        risk_level="high",
        risk_signals=("new_device", "impossible_travel"),
        policy_version="p-7f3a",
        instance="bench",
    )


async def append_rate(url: str, sealer: Sealer, replicas: int, total: int, spool: Path) -> float:
    logs = [
        AuditLog(
            client_from_url(url, timeout=5.0),
            sealer,
            AuditConfig(
                stream_key=f"{STREAM}:append{replicas}",
                spool_file=spool / f"r{i}",
                instance=f"r{i}",
                queue_max_entries=total,
            ),
            registry=CollectorRegistry(),
        )
        for i in range(replicas)
    ]
    for log in logs:
        await log.start()
    began = time.perf_counter()
    for n in range(total):
        logs[n % replicas].append(entry(n))
        if n % 500 == 0:
            await asyncio.sleep(0)  # let the writers run, as a serving loop would
    for log in logs:
        await log.close()
        await log.client.aclose()
    return total / (time.perf_counter() - began)


async def fill(client: redis.Redis, sealer: Sealer, count: int) -> float:
    """Write `count` chained entries straight into the stream (pipelined XADD)."""
    began, head, done = time.perf_counter(), ChainHead.genesis(), 0
    while done < count:
        batch = range(done, min(done + 5000, count))
        sealed = [await seal_entry(sealer, entry(n)) for n in batch]
        pipe = client.pipeline(transaction=False)
        for link, item in zip(links_after(head, (s.digest for s in sealed)), sealed, strict=True):
            pipe.xadd(STREAM, stream_fields(link, item.envelope))  # type: ignore[arg-type]
            head = ChainHead(link.seq, link.hash)
        pipe.execute()
        done += len(sealed)
    return time.perf_counter() - began


def verify_rate(client: redis.Redis, sealer: Sealer | None) -> tuple[int, float]:
    # As `admitd audit verify` does it: a synchronous walk, entries opened on a private loop.
    with entry_opener(sealer) if sealer is not None else nullcontext() as opener:
        report = verify_chain(
            records_from_stream(client, STREAM),
            opener=opener,
            checkpoints={},
            start=ChainHead.genesis(),
            check_tail=True,
        )
    assert report.problem is None, str(report.problem)
    return report.entries, report.entries / report.seconds


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--append-entries", type=int, default=40_000)
    args = parser.parse_args()
    kms = MemoryKms.with_aliases([ALIAS_AUDIT_LOG])
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "redis") as server:
        sealer = Sealer(kms)
        for replicas in (1, 4):
            rate = asyncio.run(
                append_rate(server.url, sealer, replicas, args.append_entries, Path(tmp))
            )
            print(f"append, {replicas} replica(s) sharing one chain: {rate:,.0f} entries/s")
        client = redis.Redis.from_url(server.url, decode_responses=True)
        seconds = asyncio.run(fill(client, sealer, args.entries))
        print(
            f"filled {args.entries:,} entries in {seconds:.1f} s; RSS peak {max_rss_mib():.0f} MiB"
        )
        # A DEK cache would not help: every entry has its own DEK (one unwrap each).
        entries, rate = verify_rate(client, Sealer(kms, cache=DekCache(1, 1.0)))
        print(
            f"verify (decrypt + digest + links): {entries:,} entries, {rate:,.0f} entries/s;"
            f" RSS peak {max_rss_mib():.0f} MiB"
        )
        entries, rate = verify_rate(client, None)
        print(
            f"verify (links only, no KMS): {entries:,} entries, {rate:,.0f} entries/s;"
            f" RSS peak {max_rss_mib():.0f} MiB"
        )
        client.close()


if __name__ == "__main__":
    main()
