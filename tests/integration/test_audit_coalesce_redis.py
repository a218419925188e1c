"""Coalesced denials against a real Redis: the chain verifies, nothing is merged that must
not be, no count is lost at close or through the spool, and `serve`'s wiring coalesces."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from prometheus_client import CollectorRegistry

from admitd.audit import AuditConfig, AuditEntry, AuditLog, ChainHead
from admitd.audit.cli import register
from admitd.audit.sealed import SealedEntry, entry_opener, open_entry
from admitd.audit.sources import records_from_stream
from admitd.audit.stream import StreamAppender
from admitd.audit.verify import Report, verify_chain
from admitd.config import load_config
from admitd.core.decision import Decision, Reason
from admitd.core.identity import ClientIdentity, User
from admitd.core.route import PolicySet
from admitd.envelope import Sealer
from admitd.extauthz.service import AuthorizationService
from admitd.kms import ALIAS_AUDIT_LOG, MemoryKms
from admitd.kms.local import create_keyring_file
from admitd.logs import DecisionLog
from admitd.pki import DEV_FILES, write_dev_pki
from admitd.policy.loader import load_policies
from admitd.runtime import runtime_from_config
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

STREAM = "admitd:audit"
POLICY = """
routes:
  - {name: api, match: {path_prefix: /api/}, identities: any}
  - {name: admin, match: {path_prefix: /admin/}, identities: any, roles: [admin]}
"""
PRIVILEGED = frozenset({"admin", "finance", "analyst", "auditor"})
ALICE = ClientIdentity("f" * 64, "s" * 64, "01", "CN=alice", ("spiffe://t/alice",), ())


@pytest.fixture
def server(redis_servers: RedisServers) -> RedisServer:
    return redis_servers.start(durable=True)


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(MemoryKms.with_aliases([ALIAS_AUDIT_LOG]))


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    path = tmp_path_factory.mktemp("policy") / "routes.yaml"
    path.write_text(POLICY)
    return load_policies(path)


_SYNC: list[redis.Redis] = []


@pytest.fixture(autouse=True)
def _close_sync_clients() -> Iterator[None]:
    yield
    while _SYNC:
        _SYNC.pop().close()


def sync_client(server: RedisServer) -> redis.Redis:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    _SYNC.append(client)
    return client


def make_log(
    server: RedisServer,
    sealer: Sealer,
    tmp_path: Path,
    policy: PolicySet,
    registry: CollectorRegistry,
    seconds: float = 1.0,
) -> AuditLog:
    # Time windows exactly: durable answers off (with them on, a window's count goes out
    # with every batch: test_durable_answers_write_the_counts_so_far_within_the_linger).
    config = AuditConfig(
        spool_file=tmp_path / "a.spool",
        instance="a",
        coalesce_seconds=seconds,
        durable_answers=False,
    )
    log = AuditLog(client_from_url(server.url), sealer, config, registry=registry)
    log.use_policy(lambda: policy, PRIVILEGED)
    return log


def denial(policy: PolicySet, **changes: object) -> Decision:
    base = Decision(
        allowed=False,
        reason=Reason.IDENTITY_NOT_ALLOWED,
        route="api",
        identity=ALICE,
        policy_version=policy.version,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def record(log: AuditLog, decision: Decision, ip: str = "203.0.113.7") -> None:
    log.record_decision(decision, source_ip=ip, device_id="", now=time.time())


async def shut(log: AuditLog) -> None:
    await log.close()
    await log.client.aclose()


async def entries(server: RedisServer, sealer: Sealer) -> list[dict[str, Any]]:
    return [
        json.loads(await open_entry(sealer, f["env"]))
        for _i, f in sync_client(server).xrange(STREAM)
    ]


def verify_blocking(server: RedisServer, sealer: Sealer) -> Report:
    with entry_opener(sealer) as opener:
        return verify_chain(
            records_from_stream(sync_client(server), STREAM),
            opener=opener,
            checkpoints={},
            start=ChainHead.genesis(),
            check_tail=True,
        )


async def verify(server: RedisServer, sealer: Sealer) -> Report:
    return await asyncio.to_thread(verify_blocking, server, sealer)


def appends(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("admitd_audit_appends_total", {"outcome": outcome})


async def test_forty_identical_denials_chain_as_one_plus_one_with_count_39(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    registry = CollectorRegistry()
    log = make_log(server, sealer, tmp_path, policy, registry)
    await log.start()
    for _ in range(40):  # at once: no await in between
        record(log, denial(policy))
    await shut(log)  # mid-window: close() flushes the count
    first, follow_up = await entries(server, sealer)
    assert "count" not in first and follow_up["count"] == "39"
    assert first["time"] <= follow_up["first_time"] <= follow_up["last_time"]
    same = {k for k in first if k not in {"time", "salt"}}
    assert {k: follow_up[k] for k in same} == {k: first[k] for k in same}
    report = await verify(server, sealer)
    assert report.problem is None and (report.entries, report.decisions) == (2, 40)
    assert appends(registry, "redis") == 40  # decisions, not entries
    assert registry.get_sample_value("admitd_audit_coalesced_total") == 39


async def test_privileged_and_other_sources_are_never_merged_into_the_flood(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = make_log(server, sealer, tmp_path, policy, CollectorRegistry())
    await log.start()
    admin = User("root", "acme", frozenset({"admin"}), session_id="s-1")
    for n in range(40):
        record(log, denial(policy))
        if n % 10 == 0:
            record(log, denial(policy, user=admin))  # a privileged user: every one written
            record(log, denial(policy, route="admin", reason=Reason.ROLE_REQUIRED))
            record(log, denial(policy), ip="198.51.100.9")  # another source
    await shut(log)
    seen = [
        (e["user"], e["details"]["route"], e["source_ip"], e.get("count"))
        for e in await entries(server, sealer)
    ]
    assert seen.count(("root", "api", "203.0.113.7", None)) == 4
    assert seen.count(("", "admin", "203.0.113.7", None)) == 4
    assert ("", "api", "198.51.100.9", None) in seen and ("", "api", "198.51.100.9", "3") in seen
    assert ("", "api", "203.0.113.7", "39") in seen and len(seen) == 4 + 4 + 2 + 2
    report = await verify(server, sealer)
    assert report.problem is None and report.decisions == 40 + 4 * 3


async def test_a_window_ends_by_itself_while_the_log_runs(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = make_log(server, sealer, tmp_path, policy, CollectorRegistry(), seconds=0.2)
    await log.start()
    for _ in range(10):
        record(log, denial(policy))
    client = sync_client(server)
    deadline = time.monotonic() + 10
    while client.xlen(STREAM) < 2:  # the follow-up is written when the window ends
        assert time.monotonic() < deadline, "the follow-up entry never came"
        await asyncio.sleep(0.05)
    assert log.coalescing == 0
    await shut(log)
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "9"]


async def test_coalesced_entries_survive_the_spool_while_redis_is_away(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    registry = CollectorRegistry()
    log = make_log(server, sealer, tmp_path, policy, registry, seconds=0.2)
    await log.start()
    await asyncio.to_thread(server.stop)
    for _ in range(40):
        record(log, denial(policy))
    deadline = time.monotonic() + 20
    while appends(registry, "spooled") != 40:  # the first entry, then the follow-up (39)
        assert time.monotonic() < deadline, f"spooled {appends(registry, 'spooled')}"
        await asyncio.sleep(0.05)
    assert log.spool.pending
    await asyncio.to_thread(server.start)
    await shut(log)  # replays the spool
    assert not log.spool.pending and appends(registry, "replayed") == 40
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "39"]
    report = await verify(server, sealer)
    assert report.problem is None and report.decisions == 40


async def test_close_with_redis_away_keeps_the_count_for_the_next_start(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = make_log(server, sealer, tmp_path, policy, CollectorRegistry())
    await log.start()
    await asyncio.to_thread(server.stop)
    for _ in range(40):
        record(log, denial(policy))
    await shut(log)  # mid-window, Redis away: the first entry and the count go to the spool
    assert log.spool.pending
    await asyncio.to_thread(server.start)
    registry = CollectorRegistry()
    restarted = make_log(server, sealer, tmp_path, policy, registry)  # the same spool file
    await restarted.start()
    await shut(restarted)
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "39"]
    assert appends(registry, "replayed") == 40
    assert (await verify(server, sealer)).problem is None


async def test_a_full_queue_still_coalesces_on_its_way_through_the_spool(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    config = AuditConfig(
        spool_file=tmp_path / "q.spool", instance="q", queue_max_entries=10, durable_answers=False
    )
    log = AuditLog(client_from_url(server.url), sealer, config, registry=CollectorRegistry())
    log.use_policy(lambda: policy, PRIVILEGED)
    await log.start()
    for _ in range(40):  # no await: three overflows and a queue
        record(log, denial(policy))
    await shut(log)
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "39"]
    assert (await verify(server, sealer)).decisions == 40


async def test_an_unsealable_follow_up_counts_every_decision_it_stood_for_as_dropped(
    server: RedisServer, tmp_path: Path, policy: PolicySet
) -> None:
    registry = CollectorRegistry()
    no_keys = Sealer(MemoryKms.with_aliases([]))  # every seal fails: AliasNotFound
    log = make_log(server, no_keys, tmp_path, policy, registry)
    await log.start()
    for _ in range(40):
        record(log, denial(policy))
    await shut(log)
    assert appends(registry, "dropped") == 40 and sync_client(server).xlen(STREAM) == 0


async def test_a_writer_survives_an_entry_that_is_not_unicode_text(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    """It used to die on it (UnicodeEncodeError), and every later entry was lost."""
    log = make_log(server, sealer, tmp_path, policy, CollectorRegistry())
    await log.start()
    log.append(AuditEntry(time=1.0, event_type="mfa.verify.failed", user="bad\ud800"))
    await asyncio.sleep(0.2)  # let the writer meet it on its own
    log.append(AuditEntry(time=2.0, event_type="mfa.verify.failed", user="next"))
    await shut(log)
    assert [e["user"] for e in await entries(server, sealer)] == ["bad?", "next"]


async def test_packed_batches_keep_every_envelope_byte_for_byte(server: RedisServer) -> None:
    client = client_from_url(server.url)
    appender = StreamAppender(client, STREAM)
    odd = ["plain", "with spaces 12 34 ", "new\nline", "é名\U0001f600", "x" * 70_000, " "]
    added = await appender.append([SealedEntry(bytes([n]) * 32, env) for n, env in enumerate(odd)])
    await client.aclose()
    stored = sync_client(server).xrange(STREAM)
    assert added == len(odd) and [f["env"] for _i, f in stored] == odd
    assert [f["digest"] for _i, f in stored] == [(bytes([n]) * 32).hex() for n in range(len(odd))]
    report = await asyncio.to_thread(
        lambda: verify_chain(
            records_from_stream(sync_client(server), STREAM),
            opener=None,
            checkpoints={},
            start=ChainHead.genesis(),
            check_tail=True,
        )
    )
    assert report.problem is None and report.entries == len(odd)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.handler(args))


# ---------------------------------------------------------------- as `admitd serve` wires it

ADMIN_POLICY = {
    "unmatched": "deny",
    "routes": [
        {
            "name": "ops",
            "match": {"path_prefix": "/ops/"},
            "identities": {"spiffe": ["spiffe://nobody/*"]},
        },
        {
            "name": "admin",
            "match": {"path_prefix": "/admin/"},
            "identities": {"spiffe": ["spiffe://nobody/*"]},
            "roles": ["admin"],
        },
    ],
}


def serve_config(root: Path, redis_url: str) -> Path:
    write_dev_pki(root / "pki")
    keyring = root / "keyring.json"
    create_keyring_file(keyring, ["kms/session-secrets", "kms/device-telemetry", "kms/audit-log"])
    (root / "policies.yaml").write_text(yaml.safe_dump(ADMIN_POLICY))
    config = {
        "policies": "policies.yaml",
        "metrics_listen": "",
        "redis_url": redis_url,
        "tls": {"trust_bundle": f"pki/{DEV_FILES['trust']}"},
        "kms": {"provider": "local", "keyring": str(keyring)},
        "audit": {"spool_file": "spool.jsonl", "instance": "serve"},
    }
    path = root / "admitd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def check_request(path: str, cert_pem: str) -> CheckRequest:
    request = CheckRequest()
    request.attributes.source.address.socket_address.address = "203.0.113.7"
    request.attributes.source.certificate = urllib.parse.quote(cert_pem)
    http = request.attributes.request.http
    http.method, http.path, http.host, http.scheme = "GET", path, "api.test", "https"
    http.headers.update({":path": path, "x-forwarded-proto": "https", ":authority": "api.test"})
    return request


class _Context:
    def time_remaining(self) -> float:
        return 1.0

    def invocation_metadata(self) -> tuple[()]:
        return ()


async def test_serve_coalesces_plain_denials_but_not_on_a_privileged_route(
    server: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = serve_config(tmp_path, server.url)
    runtime = runtime_from_config(load_config(config_path))
    await runtime.start()
    alice = (tmp_path / "pki" / "alice.pem").read_text()
    service = AuthorizationService(
        runtime.engine, runtime.metrics, DecisionLog(lambda _line: None), runtime.audit_decision
    )
    # Concurrent, as a flood is: with durable answers (the default) repeats that wait for
    # the writer together share a follow-up entry.
    paths = [path for _ in range(20) for path in ("/ops/x", "/admin/x")]  # identity_not_allowed
    checks = [service.Check(check_request(path, alice), _Context()) for path in paths]
    for response in await asyncio.gather(*checks):
        assert response.denied_response.status.code == 495
    await runtime.close()
    assert runtime.redis is not None
    await runtime.redis.aclose()
    stored = sync_client(server).xrange(STREAM)
    assert len(stored) < 1 + 19 + 20  # ops: first + follow-ups; admin: every one
    assert await asyncio.to_thread(run_cli, "audit", "verify", "--config", str(config_path)) == 0
    assert "standing for 40 audited decisions" in capsys.readouterr().out
    out = tmp_path / "export.jsonl"
    argv = ("audit", "export", "--config", str(config_path), "--since", "2000-01-01")
    assert await asyncio.to_thread(run_cli, *argv, "--out", str(out)) == 0
    assert "standing for 40 audited decisions" in capsys.readouterr().out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    counts = [(e["entry"]["details"]["route"], e["entry"].get("count")) for e in lines]
    assert counts.count(("admin", None)) == 20 and counts.count(("ops", None)) == 1
    assert sum(int(n) for route, n in counts if route == "ops" and n) == 19
    assert await asyncio.to_thread(run_cli, "audit", "verify", "--file", str(out)) == 0
    assert "standing for 40 audited decisions" in capsys.readouterr().out


# ---- durable answers (the default): a decision is answered once its entry is durable ----


def durable_log(server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet) -> AuditLog:
    config = AuditConfig(spool_file=tmp_path / "d.spool", instance="d")
    assert config.durable_answers
    log = AuditLog(client_from_url(server.url), sealer, config, registry=CollectorRegistry())
    log.use_policy(lambda: policy, PRIVILEGED)
    return log


def receipt_of(log: AuditLog, decision: Decision) -> asyncio.Future[None]:
    receipt = log.record_decision(decision, source_ip="203.0.113.7", device_id="", now=time.time())
    assert isinstance(receipt, asyncio.Future)
    return receipt


async def test_durable_answers_write_the_counts_so_far_within_the_linger(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = durable_log(server, sealer, tmp_path, policy)
    await log.start()
    await asyncio.gather(*(receipt_of(log, denial(policy)) for _ in range(5)))
    # Answered: the repeats' count is in the stream already, the window still open.
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "4"]
    await asyncio.gather(*(receipt_of(log, denial(policy)) for _ in range(3)))
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "4", "3"]
    await shut(log)
    assert (await verify(server, sealer)).decisions == 8


async def test_a_receipt_settles_only_once_the_entry_is_in_redis_or_the_spool(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = durable_log(server, sealer, tmp_path, policy)
    await log.start()
    spooled_at_settle: list[bool] = []
    server.freeze()  # the append waits for its 0.5 s timeout, then spools
    try:
        receipt = receipt_of(log, denial(policy, reason=Reason.CERTIFICATE_REVOKED))
        receipt.add_done_callback(lambda _: spooled_at_settle.append(log.spool.pending))
        await asyncio.sleep(0.2)
        assert not receipt.done()
        await asyncio.wait_for(asyncio.shield(receipt), 5)
        assert spooled_at_settle == [True]
    finally:
        server.thaw()
    await shut(log)
    assert [e["reason"] for e in await entries(server, sealer)] == ["revoked"]


async def test_a_check_is_answered_and_logged_only_once_its_entry_is_durable(
    server: RedisServer, tmp_path: Path
) -> None:
    config_path = serve_config(tmp_path, server.url)
    runtime = runtime_from_config(load_config(config_path))
    await runtime.start()
    lines: list[str] = []
    service = AuthorizationService(
        runtime.engine, runtime.metrics, DecisionLog(lines.append, batch=1), runtime.audit_decision
    )
    alice = (tmp_path / "pki" / "alice.pem").read_text()
    server.freeze()
    try:
        asked = time.time()
        check = asyncio.create_task(service.Check(check_request("/ops/x", alice), _Context()))
        await asyncio.sleep(0.2)
        assert not check.done() and lines == []  # neither answered nor logged: not durable
        response = await asyncio.wait_for(check, 5)  # spooled after Redis' timeout
        assert response.denied_response.status.code == 495
        assert len(lines) == 1 and "identity_not_allowed" in lines[0]
        # The Check's time, in the histogram and the line, includes the wait for the entry.
        line = json.loads(lines[0])
        assert line["duration_us"] >= 200_000
        assert line["ts"] - asked < 0.15  # the decision's time, not when the entry landed
        waited = sum(
            sample.value
            for family in runtime.registry.collect()
            if family.name == "admitd_check_duration_seconds"
            for sample in family.samples
            if sample.name.endswith("_sum")
        )
        assert waited >= 0.2
    finally:
        server.thaw()
    await runtime.close()
    assert runtime.redis is not None
    await runtime.redis.aclose()


async def test_a_repeat_waits_for_its_count_but_not_past_the_linger(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = durable_log(server, sealer, tmp_path, policy)
    await log.start()
    await receipt_of(log, denial(policy))  # the window's first entry
    started = time.monotonic()
    repeats = [receipt_of(log, denial(policy)) for _ in range(3)]
    await asyncio.sleep(0.005)
    assert not any(r.done() for r in repeats), "answered before the count was written"
    await asyncio.wait_for(asyncio.gather(*repeats), 2)
    assert time.monotonic() - started < 0.5
    assert [e.get("count") for e in await entries(server, sealer)] == [None, "3"]
    await shut(log)


async def test_once_the_writer_has_stopped_no_check_waits_for_a_receipt(
    server: RedisServer, sealer: Sealer, tmp_path: Path, policy: PolicySet
) -> None:
    log = durable_log(server, sealer, tmp_path, policy)
    await log.start()
    await shut(log)
    late = log.record_decision(denial(policy), source_ip="203.0.113.7", device_id="", now=0.0)
    assert late is None  # a future nothing would settle would hang the Check
