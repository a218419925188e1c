"""An append that timed out but went through is not written twice when the spool replays it.

Redis frozen (SIGSTOP) past the client's timeout still runs the append it had received
once it thaws; the writer had spooled that batch and replays it. Before the digest check
the replay appended the same entries again: the chain still verified (each copy a new
link), so only counting showed it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from admitd.audit import AuditConfig, AuditEntry, AuditLog, ChainHead
from admitd.audit.sealed import entry_opener, seal_entry
from admitd.audit.sources import records_from_stream
from admitd.audit.stream import StreamAppender, digests_key
from admitd.audit.verify import verify_chain
from admitd.envelope import Sealer
from admitd.kms import ALIAS_AUDIT_LOG, MemoryKms
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

STREAM = "admitd:audit"


@pytest.fixture
def server(redis_servers: RedisServers) -> RedisServer:
    return redis_servers.start()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(MemoryKms.with_aliases([ALIAS_AUDIT_LOG]))


def entry(n: int) -> AuditEntry:
    return AuditEntry(time=float(n), event_type="decision.denied", user=f"user-{n}")


def stream_report(server: RedisServer, sealer: Sealer) -> tuple[Counter[str], str | None, int]:
    """(digests and how often each is in the stream, the verifier's problem, entries)."""
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        digests = Counter(fields["digest"] for _id, fields in client.xrange(STREAM))
        with entry_opener(sealer) as opener:
            report = verify_chain(
                records_from_stream(client, STREAM),
                opener=opener,
                checkpoints={},
                start=ChainHead.genesis(),
                check_tail=True,
            )
        return digests, report.problem, report.entries
    finally:
        client.close()


async def test_a_batch_appended_again_adds_only_what_is_new(
    server: RedisServer, sealer: Sealer
) -> None:
    client = client_from_url(server.url)
    try:
        sealed = [await seal_entry(sealer, entry(n)) for n in range(6)]
        assert await StreamAppender(client, STREAM).append(sealed[:4]) == 4
        # Another appender (a restarted replica replaying its spool) knows no head.
        assert await StreamAppender(client, STREAM).append(sealed[:4]) == 0
        assert await StreamAppender(client, STREAM).append(sealed[2:]) == 2
    finally:
        await client.aclose()
    digests, problem, entries = await asyncio.to_thread(stream_report, server, sealer)
    assert problem is None and entries == 6
    assert set(digests.values()) == {1}


async def test_the_recent_digests_stay_bounded(server: RedisServer, sealer: Sealer) -> None:
    from admitd.audit import stream

    client = client_from_url(server.url)
    limit, stream.RECENT_DIGESTS = stream.RECENT_DIGESTS, 5
    try:
        appender = StreamAppender(client, STREAM)
        for n in range(4):
            await appender.append([await seal_entry(sealer, entry(10 * n + k)) for k in range(3)])
        assert await client.zcard(digests_key(STREAM)) == 5
    finally:
        stream.RECENT_DIGESTS = limit
        await client.aclose()


def test_the_digests_key_shares_the_streams_cluster_slot() -> None:
    assert digests_key("admitd:audit") == "{admitd:audit}:digests"
    assert digests_key("{tenant-a}:audit") == "{tenant-a}:audit:digests"


async def test_a_frozen_redis_that_runs_the_timed_out_append_later_gets_no_duplicates(
    server: RedisServer, sealer: Sealer, tmp_path: Path
) -> None:
    config = AuditConfig(spool_file=tmp_path / "spool.jsonl", coalesce_seconds=0)
    log = AuditLog(
        client_from_url(server.url, timeout=0.3), sealer, config, registry=CollectorRegistry()
    )
    await log.start()
    try:
        for n in range(20):
            log.append(entry(n))
        await asyncio.sleep(0.3)  # written
        server.freeze()
        for n in range(20, 60):
            log.append(entry(n))  # sent, then the reply times out: spooled
        await asyncio.sleep(1.0)
        server.thaw()  # Redis now runs what it had received
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not log.spool.pending:
                break
    finally:
        await log.close()
        await log.client.aclose()
    digests, problem, entries = await asyncio.to_thread(stream_report, server, sealer)
    assert problem is None
    assert entries == 60 and set(digests.values()) == {1}
