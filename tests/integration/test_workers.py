"""`admitd serve` with `workers: 2` as real processes, with a real Redis.

Both workers share the Check port and answer Checks (each gRPC channel below opens its
own connection, which the kernel hands to one worker); /metrics merges their counts;
policy and revocation files and SIGHUP reach each of them; their audit appends form one
chain that verifies; a killed worker is restarted; SIGTERM stops them all; and a worker
that cannot start stops the supervisor with its error, once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
import yaml
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse

from admitd.certs.revocation import append_deny_entry
from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet, url_pem

pytestmark = pytest.mark.integration

ALICE_ONLY = """
routes:
  - name: api
    match: {path_prefix: /api/}
    identities:
      spiffe: ["spiffe://test.example/user/alice"]
"""
EVERY_USER = ALICE_ONLY.replace("user/alice", "user/*")
AUDIT_STREAM = "admitd:audit"  # audit.stream_key's default
ROUNDS = 10  # batches of fresh connections before giving up on reaching both workers
BATCH = 20


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    group: ProcessGroup
    check_port: int
    metrics_port: int
    work: Path

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}") as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def readyz(self) -> dict[str, object]:
        body: dict[str, object] = json.loads(self.get("/readyz")[1])
        return body

    def workers(self) -> dict[str, dict[str, object]]:
        return self.readyz()["workers"]  # type: ignore[return-value]

    def metric(self, name: str) -> dict[str, float]:
        """`name`'s samples on the supervisor's /metrics, by their label text."""
        found = re.findall(rf"^{name}(?:{{(.*?)}})? (\S+)$", self.get("/metrics")[1], re.M)
        return {labels: float(value) for labels, value in found}

    def checks_per_worker(self) -> tuple[float, float]:
        per_worker = self.metric("admitd_worker_checks_total")
        return per_worker['worker="0"'], per_worker['worker="1"']

    def log(self) -> str:
        return self.group.log_text("admitd")


def check(port: int, path: str, cert: str = "", source: str = "203.0.113.7") -> CheckResponse:
    """One Check on a connection of its own (no channel shares it)."""
    request = CheckRequest()
    request.attributes.source.certificate = cert
    request.attributes.source.address.socket_address.address = source
    http = request.attributes.request.http
    http.method, http.path, http.host = "GET", path, "api.test"
    http.headers.update({"x-forwarded-proto": "https"})
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        reply: CheckResponse = external_auth_pb2_grpc.AuthorizationStub(channel).Check(
            request, timeout=10
        )
        return reply


def reason(reply: CheckResponse) -> str:
    """The reason code of a denial ("" for an admit)."""
    if not reply.HasField("denied_response"):
        return ""
    return str(json.loads(reply.denied_response.body)["error"]["reason"])


def on_both_workers(admitd: Supervised, ask: Callable[[], CheckResponse]) -> list[CheckResponse]:
    """Batches of `ask` until each worker has answered some of them (bounded)."""
    before, replies = admitd.checks_per_worker(), []
    for _ in range(ROUNDS):
        replies += [ask() for _ in range(BATCH)]
        after = admitd.checks_per_worker()
        if all(now > then for now, then in zip(after, before, strict=True)):
            return replies
    raise AssertionError(f"Checks reached one worker only: {before} -> {after}")


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def both_ready(admitd: Supervised, *, not_pid: object = None) -> bool:
    """Both workers serve (and worker 1's process is not `not_pid`), in one answer."""
    try:
        workers = admitd.workers()
    except (OSError, ValueError):
        return False
    serving = all(worker["state"] == "ready" for worker in workers.values())
    return serving and workers["1"]["pid"] != not_pid


def start(pki: PkiSet, redis: RedisServer, work: Path, policy: str, **extra: object) -> Supervised:
    ports = {name: free_port() for name in ("check", "metrics")}
    (work / "policies.yaml").write_text(policy)
    (work / "deny.txt").write_text("")
    config = {
        "listen": f"127.0.0.1:{ports['check']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": "policies.yaml",
        "policy_reload_seconds": 0.2,
        "dev_mode": True,  # the dev KMS: deterministic keys, so any process opens the audit
        "redis_url": redis.url,
        "grace_seconds": 1,
        "workers": 2,
        "tls": {
            "trust_bundle": str(pki.trust_bundle),
            "deny_list": "deny.txt",
            "revocation_poll_seconds": 0.2,
        },
        "audit": {"spool_file": str(work / "spool.jsonl")},
        **extra,
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    group = ProcessGroup(work / "logs")
    argv = [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")]
    process = group.start("admitd", argv)
    return Supervised(process, group, ports["check"], ports["metrics"], work)


@pytest.fixture(scope="module")
def admitd(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervised]:
    supervised = start(pki, redis_server, tmp_path_factory.mktemp("workers"), ALICE_ONLY)
    with supervised.group:
        wait_for_port(supervised.metrics_port, process=supervised.process)
        wait_for(lambda: both_ready(supervised))
        yield supervised


def test_two_workers_share_the_check_port_and_metrics_add_up(admitd: Supervised) -> None:
    pids = {worker["pid"] for worker in admitd.workers().values()}
    assert len(pids) == 2 and admitd.process.pid not in pids
    decisions_before = sum(admitd.metric("admitd_decisions_total").values())
    replies = on_both_workers(admitd, lambda: check(admitd.check_port, "/api/x"))
    assert {reply.denied_response.status.code for reply in replies} == {495}
    # Summed over both workers' metric files: every Check counted once.
    decisions = sum(admitd.metric("admitd_decisions_total").values()) - decisions_before
    assert decisions == len(replies)
    assert admitd.metric("admitd_workers") == {"": 2.0}
    status, body = admitd.get("/readyz")
    assert status == 200 and json.loads(body)["checks"]["workers"]["ok"] is True


def test_policy_and_revocation_files_reach_every_worker(admitd: Supervised, pki: PkiSet) -> None:
    bob, alice = url_pem(pki.bob), url_pem(pki.alice)
    assert reason(check(admitd.check_port, "/api/x", bob)) == "identity_not_allowed"
    applied = admitd.metric("admitd_policy_reloads_total").get('outcome="applied"', 0.0)
    (admitd.work / "policies.yaml").write_text(EVERY_USER)
    # Each worker polls the files itself: one change, one reload in each.
    wait_for(
        lambda: admitd.metric("admitd_policy_reloads_total").get('outcome="applied"') == applied + 2
    )
    replies = on_both_workers(admitd, lambda: check(admitd.check_port, "/api/x", bob))
    assert all(reply.HasField("ok_response") for reply in replies)

    revoked = admitd.metric("admitd_revocation_reloads_total").get('outcome="applied"', 0.0)
    cert_file = admitd.work / "alice.pem"
    cert_file.write_bytes(pki.alice.cert_pem)
    append_deny_entry(admitd.work / "deny.txt", cert_file=cert_file, comment="test")
    wait_for(
        lambda: (
            admitd.metric("admitd_revocation_reloads_total").get('outcome="applied"') == revoked + 2
        )
    )
    replies = on_both_workers(admitd, lambda: check(admitd.check_port, "/api/x", alice))
    assert {reason(reply) for reply in replies} == {"revoked"}


def test_sighup_reloads_the_policies_of_every_worker(admitd: Supervised) -> None:
    applied = admitd.metric("admitd_policy_reloads_total").get('outcome="applied"', 0.0)
    admitd.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: admitd.metric("admitd_policy_reloads_total").get('outcome="applied"') == applied + 2
    )
    assert both_ready(admitd)  # forwarded as a reload: neither worker stopped


def test_both_workers_append_to_one_audit_chain_that_verifies(
    admitd: Supervised, redis_server: RedisServer
) -> None:
    stream = redis.Redis.from_url(redis_server.url)
    before = stream.xlen(AUDIT_STREAM)
    sources = (f"198.51.100.{n % 250}" for n in range(ROUNDS * BATCH))
    # A source each: no two denials are alike, so each is an entry of its own.
    denied = on_both_workers(admitd, lambda: check(admitd.check_port, "/api/x", "", next(sources)))
    assert {reason(reply) for reply in denied} == {"missing"}
    wait_for(lambda: stream.xlen(AUDIT_STREAM) >= before + len(denied))
    config = str(admitd.work / "admitd.yaml")
    verify = subprocess.run(
        [sys.executable, "-m", "admitd", "audit", "verify", "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"ok: {stream.xlen(AUDIT_STREAM)} entries" in verify.stdout


def test_a_killed_worker_is_restarted_and_its_counts_are_kept(admitd: Supervised) -> None:
    killed = admitd.workers()["1"]["pid"]
    decisions = sum(admitd.metric("admitd_decisions_total").values())
    timed = sum(admitd.metric("admitd_check_duration_seconds_count").values())
    os.kill(int(killed), signal.SIGKILL)  # type: ignore[call-overload]
    wait_for(lambda: both_ready(admitd, not_pid=killed))
    assert admitd.workers()["1"]["restarts"] == 1
    assert admitd.metric("admitd_worker_restarts_total")['worker="1"'] == 1
    assert f"worker 1 (pid {killed}) exited with -9" in admitd.log()
    # The dead worker's counts stay in the totals (folded into the archive files).
    assert sum(admitd.metric("admitd_decisions_total").values()) == decisions
    assert sum(admitd.metric("admitd_check_duration_seconds_count").values()) == timed
    on_both_workers(admitd, lambda: check(admitd.check_port, "/api/x"))


def test_sigterm_stops_every_worker_and_removes_the_private_directory(
    admitd: Supervised,
) -> None:
    """Last in this module: it stops the module's admitd."""
    pids = [int(worker["pid"]) for worker in admitd.workers().values()]  # type: ignore[call-overload]
    private = Path(re.findall(r"unix://(\S+)/worker-0\.sock", admitd.log())[-1])
    assert private.is_dir()
    admitd.process.send_signal(signal.SIGTERM)
    assert admitd.process.wait(timeout=30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not private.exists()
    assert "admitd stopped (2 workers)" in admitd.log()


def test_a_worker_that_cannot_start_stops_the_supervisor_with_its_error(
    pki: PkiSet, redis_server: RedisServer, tmp_path: Path
) -> None:
    supervised = start(pki, redis_server, tmp_path, "routes: [{name: api}]\n")
    with supervised.group:
        assert supervised.process.wait(timeout=60) == 2
    log = supervised.log()
    assert log.count("admitd: error:") == 1, log  # worker 0 alone tried: no restart loop
    assert "policies.yaml" in log and "restarting" not in log
    assert "worker 0 exited with 2 before it served" in log
