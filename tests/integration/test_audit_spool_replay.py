"""Replaying the audit spool into a real Redis: a record is chained only once its envelope
has opened, under its AES-GCM tag, to the digest beside it; a damaged one is quarantined,
logged and counted, and the rest replays; while the KMS cannot answer nothing is replayed."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from admitd.audit import AuditConfig, AuditEntry, AuditLog
from admitd.audit.sealed import SealedEntry, open_entry, seal_entry
from admitd.audit.sources import records_from_stream
from admitd.envelope import Sealer
from admitd.errors import KmsError
from admitd.kms import ALIAS_AUDIT_LOG, MemoryKms
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

STREAM = "admitd:audit"


class SwitchableKms:
    """A provider whose unwrap fails (an HSM away) while `down` is set."""

    def __init__(self, inner: MemoryKms) -> None:
        self._inner, self.down = inner, False

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        if self.down:
            raise KmsError("provider unreachable (test)")
        return self._inner.unwrap_dek(alias, key_version, wrapped)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def server(redis_servers: RedisServers) -> RedisServer:
    return redis_servers.start()


async def sealed_entries(sealer: Sealer, count: int) -> list[SealedEntry]:
    entries = [AuditEntry(time=float(n), event_type="x", user=f"u{n}") for n in range(count)]
    return [await seal_entry(sealer, entry) for entry in entries]


def flip_ciphertext(entry: SealedEntry) -> SealedEntry:
    """One base64 character of the ciphertext changed: the line stays well-formed JSON."""
    doc = json.loads(entry.envelope)
    text = doc["ciphertext"]
    doc["ciphertext"] = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
    return SealedEntry(entry.digest, json.dumps(doc), entry.count)


def with_key_version(entry: SealedEntry, version: int) -> SealedEntry:
    doc = json.loads(entry.envelope)
    doc["key_version"] = version
    return SealedEntry(entry.digest, json.dumps(doc), entry.count)


def audit_log(
    server: RedisServer, sealer: Sealer, spool: Path
) -> tuple[AuditLog, CollectorRegistry]:
    registry = CollectorRegistry()
    config = AuditConfig(spool_file=spool, instance="a", batch_max_entries=4)
    return AuditLog(client_from_url(server.url), sealer, config, registry=registry), registry


async def stream_users(server: RedisServer, sealer: Sealer) -> list[str]:
    import redis

    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        records = list(records_from_stream(client, STREAM))
    finally:
        client.close()
    users = []
    for record in records:
        users.append(json.loads(await open_entry(sealer, record.envelope))["user"])
    return users


async def test_damaged_records_are_quarantined_and_the_rest_replays(
    server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sealer = Sealer(MemoryKms.with_aliases([ALIAS_AUDIT_LOG]))
    good = await sealed_entries(sealer, 10)
    damaged = {
        2: flip_ciphertext(good[2]),
        # Intact envelope, another entry's digest: the chain would record a false digest.
        5: SealedEntry(good[6].digest, good[5].envelope),
        8: with_key_version(good[8], 7),  # a key version the provider never had
    }
    spool = tmp_path / "audit.spool"
    spool.write_bytes(b"".join(damaged.get(n, e).spool_line() for n, e in enumerate(good)))
    log, registry = audit_log(server, sealer, spool)
    with caplog.at_level(logging.ERROR, logger="admitd.audit"):
        await log.start()
        await log.close()
    await log.client.aclose()

    assert await stream_users(server, sealer) == [f"u{n}" for n in range(10) if n not in damaged]
    quarantine = (tmp_path / "audit.spool.corrupt").read_text()
    for entry in damaged.values():
        assert entry.digest.hex() in quarantine
    assert "envelope does not open" in caplog.text
    assert "digest does not match the sealed entry" in caplog.text
    assert "names a key the provider does not hold" in caplog.text
    quarantined = registry.get_sample_value(
        "admitd_audit_spool_quarantined_total", {"reason": "unauthentic"}
    )
    assert quarantined == 3
    assert registry.get_sample_value("admitd_audit_appends_total", {"outcome": "replayed"}) == 7
    assert not log.spool.pending


async def test_nothing_replays_unchecked_while_the_kms_is_away(
    server: RedisServer, tmp_path: Path
) -> None:
    memory = MemoryKms.with_aliases([ALIAS_AUDIT_LOG])
    good = await sealed_entries(Sealer(memory), 6)
    spool = tmp_path / "audit.spool"
    spool.write_bytes(b"".join(e.spool_line() for e in good))
    kms = SwitchableKms(memory)
    kms.down = True
    sealer = Sealer(kms)  # type: ignore[arg-type]
    log, registry = audit_log(server, sealer, spool)
    await log.start()
    await asyncio.sleep(0.3)  # the writer tries the replay and waits for the KMS
    assert log.spool.pending
    assert await stream_users(server, Sealer(memory)) == []
    assert not (tmp_path / "audit.spool.corrupt").exists()
    kms.down = False
    await log.close()  # the final replay, with the KMS back
    await log.client.aclose()
    assert await stream_users(server, Sealer(memory)) == [f"u{n}" for n in range(6)]
    quarantined = registry.get_sample_value(
        "admitd_audit_spool_quarantined_total", {"reason": "unauthentic"}
    )
    assert quarantined == 0
