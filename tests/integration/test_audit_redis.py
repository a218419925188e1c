"""The audit log against a real Redis: concurrent writers, tampering, an outage mid-stream."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from admitd.audit import AuditConfig, AuditEntry, AuditLog, AuditLogEvents, ChainHead
from admitd.audit.cli import register
from admitd.audit.export import ExportReport, export_stream
from admitd.audit.sealed import entry_opener, open_entry
from admitd.audit.sources import (
    checkpoints_from_file,
    checkpoints_from_stream,
    records_from_file,
    records_from_stream,
)
from admitd.audit.verify import Report, verify_chain
from admitd.envelope import Sealer
from admitd.kms import ALIAS_AUDIT_LOG, MemoryKms
from admitd.kms.rotation import rotate_alias
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

STREAM = "admitd:audit"
Entries = list[tuple[str, dict[str, str]]]


@pytest.fixture
def server(redis_servers: RedisServers) -> RedisServer:
    """Durable: a test restarts it mid-write, and the chain must survive the restart."""
    return redis_servers.start(durable=True)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(MemoryKms.with_aliases([ALIAS_AUDIT_LOG]))


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def make_log(
    server: RedisServer,
    sealer: Sealer,
    tmp_path: Path,
    name: str,
    key: Ed25519PrivateKey | None = None,
) -> AuditLog:
    config = AuditConfig(
        spool_file=tmp_path / f"{name}.spool", instance=name, queue_max_entries=100_000
    )
    return AuditLog(
        client_from_url(server.url), sealer, config, registry=CollectorRegistry(), signing_key=key
    )


_SYNC: list[redis.Redis] = []


def sync_client(server: RedisServer) -> redis.Redis:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    _SYNC.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_sync_clients() -> Iterator[None]:
    yield
    while _SYNC:
        _SYNC.pop().close()


async def shut(log: AuditLog) -> None:
    await log.close()
    await log.client.aclose()


async def verify(
    server: RedisServer, sealer: Sealer, key: Ed25519PrivateKey | None = None
) -> Report:
    """The offline verifier as `admitd audit verify` runs it: synchronous, off this loop."""
    return await asyncio.to_thread(verify_blocking, server, sealer, key)


def verify_blocking(server: RedisServer, sealer: Sealer, key: Ed25519PrivateKey | None) -> Report:
    client = sync_client(server)
    checkpoints = checkpoints_from_stream(
        client, f"{STREAM}:checkpoints", key.public_key() if key else None
    )
    assert checkpoints.problem is None
    with entry_opener(sealer) as opener:
        return verify_chain(
            records_from_stream(client, STREAM),
            opener=opener,
            checkpoints=checkpoints.by_seq,
            start=ChainHead.genesis(),
            check_tail=True,
        )


async def write_concurrently(
    server: RedisServer,
    sealer: Sealer,
    tmp_path: Path,
    key: Ed25519PrivateKey,
    per_writer: int = 300,
) -> None:
    logs = [make_log(server, sealer, tmp_path, f"replica-{n}", key) for n in range(3)]
    for log in logs:
        await log.start()

    async def produce(log: AuditLog, name: str) -> None:
        for n in range(per_writer):
            log.append(AuditEntry(time=float(n), event_type="decision.denied", user=f"{name}-{n}"))
            if n % 25 == 0:
                await asyncio.sleep(0.001)

    await asyncio.gather(*(produce(log, log.config.instance) for log in logs))
    for log in logs:
        await shut(log)


async def users(server: RedisServer, sealer: Sealer) -> list[str]:
    return [
        json.loads(await open_entry(sealer, f["env"]))["user"]
        for _i, f in sync_client(server).xrange(STREAM)
    ]


async def test_concurrent_writers_share_one_verifiable_chain(
    server: RedisServer, sealer: Sealer, tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    await write_concurrently(server, sealer, tmp_path, signing_key)
    report = await verify(server, sealer, signing_key)
    assert report.problem is None and report.entries == 900
    seen = await users(server, sealer)
    for name in ("replica-0", "replica-1", "replica-2"):
        assert [u for u in seen if u.startswith(name + "-")] == [f"{name}-{n}" for n in range(300)]
    assert sync_client(server).xlen(f"{STREAM}:checkpoints") >= 1


def rewrite(client: redis.Redis, change: Callable[[Entries], Entries]) -> None:
    """What an attacker with Redis access does: replace the stream with an edited copy."""
    entries: Entries = client.xrange(STREAM)  # type: ignore[assignment]
    client.delete(STREAM)
    for ident, fields in change(entries):
        client.xadd(STREAM, fields, id=ident)  # type: ignore[arg-type]


def flip_ciphertext(entries: Entries) -> Entries:
    env = json.loads(entries[100][1]["env"])
    env["ciphertext"] = ("A" if env["ciphertext"][0] != "A" else "B") + env["ciphertext"][1:]
    entries[100][1]["env"] = json.dumps(env)
    return entries


def swap(entries: Entries) -> Entries:
    (a, fa), (b, fb) = entries[200], entries[201]
    entries[200], entries[201] = (a, fb), (b, fa)
    return entries


def edit_digest(entries: Entries) -> Entries:
    entries[300][1]["digest"] = "00" * 32
    return entries


def delete_one(client: redis.Redis) -> None:
    client.xdel(STREAM, client.xrange(STREAM)[400][0])  # type: ignore[index]


def truncate_tail(client: redis.Redis) -> None:
    client.xdel(STREAM, *[i for i, _f in client.xrevrange(STREAM, count=5)])  # type: ignore[union-attr]


def corrupt_fields(entries: Entries) -> Entries:
    del entries[50][1]["hash"]
    return entries


@pytest.mark.parametrize(
    ("tamper", "kind", "position", "why"),
    [
        pytest.param(
            lambda c: rewrite(c, flip_ciphertext),
            "modified",
            101,
            "authentication",
            id="edit-ciphertext",
        ),
        pytest.param(
            lambda c: rewrite(c, edit_digest), "modified", 301, "digest", id="edit-digest"
        ),
        pytest.param(delete_one, "deleted", 401, "seq 401 missing", id="delete"),
        pytest.param(
            lambda c: rewrite(c, swap), "reordered", 201, "stands where seq 201", id="reorder"
        ),
        pytest.param(
            truncate_tail, "truncated", 896, "5 entries deleted from the tail", id="truncate-tail"
        ),
        pytest.param(
            lambda c: rewrite(c, corrupt_fields),
            "corrupted",
            51,
            "'hash' is missing",
            id="corrupt-entry",
        ),
    ],
)
async def test_verify_pinpoints_each_tampering(
    server: RedisServer,
    sealer: Sealer,
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    tamper: Callable[[redis.Redis], None],
    kind: str,
    position: int,
    why: str,
) -> None:
    await write_concurrently(server, sealer, tmp_path, signing_key)
    assert (await verify(server, sealer, signing_key)).problem is None
    tamper(sync_client(server))
    problem = (await verify(server, sealer, signing_key)).problem
    assert problem is not None
    assert (problem.kind, problem.position) == (kind, position), str(problem)
    assert why in problem.why


async def test_missing_key_version_is_reported_precisely(
    server: RedisServer, tmp_path: Path
) -> None:
    kms = MemoryKms.with_aliases([ALIAS_AUDIT_LOG])
    kms.rotate(ALIAS_AUDIT_LOG)  # entries are sealed under v2
    log = make_log(server, Sealer(kms), tmp_path, "a")
    await log.start()
    log.append(AuditEntry(time=1.0, event_type="x"))
    await shut(log)
    stale = Sealer(MemoryKms.with_aliases([ALIAS_AUDIT_LOG]))  # knows only v1
    problem = (await verify(server, stale)).problem
    assert problem is not None and (problem.kind, problem.position) == ("undecryptable", 1)
    assert "cannot recompute the digest" in problem.why and "2" in problem.why


async def test_redis_outage_mid_stream_loses_nothing(
    server: RedisServer, sealer: Sealer, tmp_path: Path
) -> None:
    log = make_log(server, sealer, tmp_path, "a")
    await log.start()
    for n in range(600):
        log.append(AuditEntry(time=float(n), event_type="mfa.verify.failed", user=f"u{n}"))
        if n == 200:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.stop)
        if n == 400:
            await asyncio.sleep(0.5)  # the writer meets the outage and spools
            assert log.spool.pending
            await asyncio.to_thread(server.start)
        await asyncio.sleep(0.002)
    await shut(log)
    assert not log.spool.pending
    seen = await users(server, sealer)
    first_seen = list(dict.fromkeys(seen))  # at-least-once: a batch cut mid-reply may repeat
    assert first_seen == [f"u{n}" for n in range(600)]
    report = await verify(server, sealer)
    assert report.problem is None and report.entries == len(seen)


async def test_a_full_queue_goes_through_the_spool_in_arrival_order(
    server: RedisServer, sealer: Sealer, tmp_path: Path
) -> None:
    config = AuditConfig(spool_file=tmp_path / "a.spool", instance="a", queue_max_entries=10)
    registry = CollectorRegistry()
    log = AuditLog(client_from_url(server.url), sealer, config, registry=registry)
    await log.start()
    for n in range(35):  # no await in between: the writer cannot drain the queue meanwhile
        log.append(AuditEntry(time=float(n), event_type="x", user=f"u{n}"))
    assert log.queued == 35  # three overflows waiting for the writer, two entries queued
    await shut(log)
    assert await users(server, sealer) == [f"u{n}" for n in range(35)]
    assert (await verify(server, sealer)).problem is None
    replayed = registry.get_sample_value("admitd_audit_appends_total", {"outcome": "replayed"})
    assert replayed == 35  # the overflows, then what queued behind them, via the spool


async def test_kms_rotation_steps_land_in_the_chain(
    server: RedisServer, sealer: Sealer, tmp_path: Path
) -> None:
    log = make_log(server, sealer, tmp_path, "a")
    await log.start()
    kms = MemoryKms.with_aliases(["kms/session-secrets"])
    rotate_alias(kms, "kms/session-secrets", AuditLogEvents(log, instance="a"))
    await shut(log)
    entry = json.loads(await open_entry(sealer, sync_client(server).xrange(STREAM)[0][1]["env"]))  # type: ignore[index]
    assert entry["event_type"] == "kms.key.rotated" and entry["details"]["active_version"] == "2"


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


async def test_cli_verify_and_export_round_trip(
    server: RedisServer,
    sealer: Sealer,
    tmp_path: Path,
    signing_key: Ed25519PrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await write_concurrently(server, sealer, tmp_path, signing_key, per_writer=50)
    public = tmp_path / "audit.pub"
    public.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert (
        await asyncio.to_thread(
            run_cli, "audit", "verify", "--redis-url", server.url, "--public-key", str(public)
        )
        == 0
    )
    assert "ok: 150 entries" in capsys.readouterr().out
    out = tmp_path / "export.jsonl"

    def export() -> ExportReport:  # synchronous, like `admitd audit export`
        with out.open("w") as handle, entry_opener(sealer) as opener:
            return export_stream(sync_client(server), STREAM, opener, handle, since_ms=0)

    report = await asyncio.to_thread(export)
    assert report.entries == 150 and report.undecryptable == 0 and report.checkpoints >= 1
    assert (
        await asyncio.to_thread(
            run_cli, "audit", "verify", "--file", str(out), "--public-key", str(public)
        )
        == 0
    )
    lines = out.read_text().splitlines()
    edited = [line.replace('"user": "replica-1-7"', '"user": "mallory"') for line in lines]
    out.write_text("\n".join(edited) + "\n")
    assert (
        await asyncio.to_thread(
            run_cli, "audit", "verify", "--file", str(out), "--public-key", str(public)
        )
        == 1
    )
    assert "modified: the plaintext does not match its stored digest" in capsys.readouterr().err
    assert checkpoints_from_file(out, signing_key.public_key()).problem is None
    assert sum(1 for _ in records_from_file(out)) == 150


async def test_a_stuck_writer_bounds_memory_and_counts_what_it_drops(
    server: RedisServer, sealer: Sealer, tmp_path: Path
) -> None:
    config = AuditConfig(spool_file=tmp_path / "b.spool", instance="b", queue_max_entries=10)
    registry = CollectorRegistry()
    log = AuditLog(client_from_url(server.url), sealer, config, registry=registry)
    await log.start()
    for n in range(1000):  # no await in between: the writer is as good as stuck
        log.append(AuditEntry(time=float(n), event_type="x", user=f"u{n}"))
    assert log.queued <= 12 * 10  # about ten queues' worth waiting, plus the queue
    dropped = registry.get_sample_value("admitd_audit_appends_total", {"outcome": "dropped"})
    assert dropped is not None and log.queued + dropped == 1000
    await shut(log)
