"""Rotation, re-encryption and retirement over sealed records in a real Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from admitd.envelope import Context, RecordType, Sealer, envelope_from_json, json_from_envelope
from admitd.envelope.records import ReencryptReport, reencrypt_records, state_key, versions_in_use
from admitd.kms import KeyInUse, LocalKms, WrappedDek, async_kms, create_keyring_file
from admitd.kms.base import ALIAS_AUDIT_LOG
from admitd.kms.cli import register
from admitd.kms.rotation import reencrypt_alias, retire_version, rotate_alias
from tests.integration.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

ALIAS = "kms/session-secrets"
PATTERNS = ("admitd:*",)


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def kms(tmp_path: Path) -> LocalKms:
    path = tmp_path / "keyring.json"
    create_keyring_file(path, (ALIAS, "kms/audit-log"))
    return LocalKms(path)


class RecordingAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self.events.append((event_type, fields))


def ctx(n: int) -> Context:
    return Context(RecordType.TOTP_SECRET, f"user-{n}", "acme")


async def sealed(sealer: Sealer, plaintext: bytes, context: Context) -> str:
    return json_from_envelope(await sealer.seal(plaintext, context))


async def seed(client: redis.Redis, sealer: Sealer, count: int) -> None:
    """`count` string records, one hash of records, an audit record and non-envelopes."""
    for n in range(count):
        client.set(f"admitd:totp:{n}", await sealed(sealer, b"s%d" % n, ctx(n)))
    passkeys = {f"cred-{n}": await sealed(sealer, b"p", ctx(1000 + n)) for n in range(3)}
    client.hset("admitd:passkeys:user-1", mapping=passkeys)
    audit = Context(RecordType.AUDIT_ENTRY, "e-1", "acme")
    client.set("admitd:audit:e-1", await sealed(sealer, b"entry", audit))
    client.set("admitd:session:abc", '{"roles": ["admin"]}')
    client.rpush("admitd:list", "x")
    client.set("other:totp:0", await sealed(sealer, b"outside", ctx(0)))


async def open_all(client: redis.Redis, sealer: Sealer, count: int) -> None:
    for n in range(count):
        raw = client.get(f"admitd:totp:{n}")
        assert raw is not None
        assert await sealer.open(envelope_from_json(raw), ctx(n)) == b"s%d" % n
    for n in range(3):
        raw = client.hget("admitd:passkeys:user-1", f"cred-{n}")
        assert raw is not None
        assert await sealer.open(envelope_from_json(raw), ctx(1000 + n)) == b"p"


async def test_rotate_reencrypt_retire(client: redis.Redis, kms: LocalKms) -> None:
    sealer, audit = Sealer(kms), RecordingAudit()
    await seed(client, sealer, 40)
    rotate_alias(kms, ALIAS, audit)
    assert versions_in_use(client, ALIAS, patterns=PATTERNS) == {1: 43}

    with pytest.raises(KeyInUse, match="43 records"):
        retire_version(kms, client, ALIAS, 1, audit, patterns=PATTERNS)

    report = await reencrypt_alias(kms, client, ALIAS, audit, patterns=PATTERNS, batch=7)
    assert (report.rewrapped, report.current, report.failed, report.conflicts) == (43, 0, 0, 0)
    assert report.complete and not client.exists(state_key(ALIAS))
    assert versions_in_use(client, ALIAS, patterns=PATTERNS) == {2: 43}

    retire_version(kms, client, ALIAS, 1, audit, patterns=PATTERNS)
    await open_all(client, sealer, 40)
    assert client.get("admitd:session:abc") == b'{"roles": ["admin"]}'
    # Outside the configured patterns: untouched, and now unreadable (documented).
    assert envelope_from_json(client.get("other:totp:0") or b"").key_version == 1
    assert [e for e, _ in audit.events] == [
        "kms.key.rotated",
        "kms.key.retire_refused",
        "kms.reencrypt.started",
        "kms.reencrypt.completed",
        "kms.key.retired",
    ]
    assert audit.events[3][1]["rewrapped"] == "43"


async def test_reencrypt_is_idempotent(client: redis.Redis, kms: LocalKms) -> None:
    await seed(client, Sealer(kms), 10)
    kms.rotate(ALIAS)
    first = await reencrypt_records(client, async_kms(kms), ALIAS, patterns=PATTERNS)
    again = await reencrypt_records(client, async_kms(kms), ALIAS, patterns=PATTERNS)
    assert (first.rewrapped, again.rewrapped, again.current) == (13, 0, 13)


async def test_reencrypt_resumes_from_the_saved_cursor(client: redis.Redis, kms: LocalKms) -> None:
    await seed(client, Sealer(kms), 200)
    kms.rotate(ALIAS)
    port = async_kms(kms)

    def crash(report: ReencryptReport) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await reencrypt_records(client, port, ALIAS, patterns=PATTERNS, batch=10, progress=crash)
    assert client.hget(state_key(ALIAS), "cursor") not in (None, b"0")
    done_before = versions_in_use(client, ALIAS, patterns=PATTERNS)[2]
    assert 0 < done_before < 203

    report = await reencrypt_records(client, port, ALIAS, patterns=PATTERNS, batch=10)
    assert report.resumed
    assert report.scanned_keys < client.dbsize()  # did not start over
    assert versions_in_use(client, ALIAS, patterns=PATTERNS) == {2: 203}


async def test_rotation_since_interruption_restarts(client: redis.Redis, kms: LocalKms) -> None:
    await seed(client, Sealer(kms), 30)
    kms.rotate(ALIAS)
    client.hset(state_key(ALIAS), mapping={"target_version": 2, "patterns": "admitd:*"})
    client.hset(state_key(ALIAS), mapping={"pattern_index": 0, "cursor": 12345})
    kms.rotate(ALIAS)
    report = await reencrypt_records(client, async_kms(kms), ALIAS, patterns=PATTERNS)
    assert not report.resumed and report.rewrapped == 33


class InterferingKms:
    """Replaces the record under re-encryption while its DEK is being unwrapped."""

    def __init__(self, inner: LocalKms, client: redis.Redis, key: str, value: str) -> None:
        self.inner, self.client, self.key, self.value = inner, client, key, value

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        return self.inner.wrap_dek(alias, dek)

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        self.client.set(self.key, self.value, keepttl=True)  # the concurrent writer
        return self.inner.unwrap_dek(alias, key_version, wrapped)

    def active_version(self, alias: str) -> int:
        return self.inner.active_version(alias)


async def test_concurrent_writer_is_never_overwritten(client: redis.Redis, kms: LocalKms) -> None:
    sealer = Sealer(kms)
    client.set("admitd:totp:0", await sealed(sealer, b"old", ctx(0)), ex=3600)
    kms.rotate(ALIAS)
    newer = await sealed(sealer, b"newer", ctx(0))  # written under v2
    interfering = async_kms(InterferingKms(kms, client, "admitd:totp:0", newer))
    report = await reencrypt_records(client, interfering, ALIAS, patterns=PATTERNS)
    assert (report.rewrapped, report.current) == (0, 1)
    assert client.get("admitd:totp:0") == newer.encode()
    assert 0 < client.ttl("admitd:totp:0") <= 3600


async def test_ttl_is_kept(client: redis.Redis, kms: LocalKms) -> None:
    client.set("admitd:totp:0", await sealed(Sealer(kms), b"x", ctx(0)), ex=500)
    kms.rotate(ALIAS)
    report = await reencrypt_records(client, async_kms(kms), ALIAS, patterns=PATTERNS)
    assert report.rewrapped == 1
    assert 0 < client.ttl("admitd:totp:0") <= 500


async def test_unreadable_and_malformed_records_are_counted(
    client: redis.Redis, kms: LocalKms
) -> None:
    client.set("admitd:totp:0", await sealed(Sealer(kms), b"x", ctx(0)))
    client.set("admitd:bad", '{"admitd_envelope": 1, "alias": 3}')
    kms.rotate(ALIAS)
    kms.rotate(ALIAS)
    kms.retire(ALIAS, 1)  # forced past the usage check: the record is stranded
    report = await reencrypt_records(client, async_kms(kms), ALIAS, patterns=PATTERNS)
    assert (report.failed, report.malformed, report.complete) == (1, 1, False)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_end_to_end(
    client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyring = tmp_path / "keyring.json"
    config = tmp_path / "admitd.yaml"
    config.write_text(f"kms:\n  provider: local\n  keyring: {keyring}\n")
    common = ("--config", str(config), "--redis-url", redis_url)

    assert run_cli("keys", "init", *common) == 0
    assert keyring.stat().st_mode & 0o777 == 0o600
    # Sync on purpose: the CLI runs its own event loop (asyncio.run).
    asyncio.run(seed(client, Sealer(LocalKms(keyring)), 25))
    with caplog.at_level(logging.INFO, logger="admitd.audit"):
        # A stopped deployment: the offline mode is explicit (and audited as such).
        assert run_cli("keys", "rotate", "--offline", "--alias", ALIAS, *common) == 0
        assert (
            run_cli("keys", "reencrypt", "--offline", "--alias", ALIAS, "--batch", "5", *common)
            == 0
        )
        assert (
            run_cli("keys", "retire", "--offline", "--alias", ALIAS, "--version", "1", *common) == 0
        )
        assert run_cli("keys", "list", *common) == 0
    out, err = capsys.readouterr()
    assert "28 re-wrapped" in out
    assert f"reencrypt {ALIAS} -> v2 [" in err and "100%" in err
    assert f"{ALIAS}\tv1\tretired" in out and f"{ALIAS}\tv2\tactive" in out
    events = [
        json.loads(r.getMessage())["event"] for r in caplog.records if r.name == "admitd.audit"
    ]
    # Each offline command announces itself before it acts, then does what it did.
    assert events[:4] == [
        "kms.offline.started",
        "kms.key.rotated",
        "kms.offline.started",
        "kms.reencrypt.started",
    ]
    assert events[-1] == "kms.key.retired"
    offline = [
        r for r in caplog.records if r.name == "admitd.audit" and "offline" in r.getMessage()
    ]
    assert all(json.loads(r.getMessage())["mode"] == "offline" for r in offline)
    asyncio.run(open_all(client, Sealer(LocalKms(keyring)), 25))


def test_audit_log_key_versions_are_never_retired(client: redis.Redis, kms: LocalKms) -> None:
    """Audit entries sit in a stream that nothing re-wraps: retiring a version that sealed
    them would make the log unreadable, so it is refused (and the refusal audited)."""
    audit = RecordingAudit()
    rotate_alias(kms, ALIAS_AUDIT_LOG, audit)
    with pytest.raises(KeyInUse, match="never re-wrapped"):
        retire_version(kms, client, ALIAS_AUDIT_LOG, 1, audit, patterns=PATTERNS)
    assert audit.events[-1][0] == "kms.key.retire_refused"
    assert audit.events[-1][1]["reason"] == "audit_log"
    assert any(v.version == 1 and v.state != "retired" for v in kms.versions(ALIAS_AUDIT_LOG))


def test_cli_refuses_to_retire_a_version_in_use(
    client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    keyring, config = tmp_path / "keyring.json", tmp_path / "admitd.yaml"
    config.write_text(f"kms:\n  provider: local\n  keyring: {keyring}\n")
    common = ("--config", str(config), "--redis-url", redis_url)
    run_cli("keys", "init", *common)
    asyncio.run(seed(client, Sealer(LocalKms(keyring)), 2))
    run_cli("keys", "rotate", "--offline", "--alias", ALIAS, *common)
    with pytest.raises(KeyInUse):
        run_cli("keys", "retire", "--offline", "--alias", ALIAS, "--version", "1", *common)
