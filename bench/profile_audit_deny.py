"""CPU per Check of a denial flood with the audit log on, in-process (no Envoy).

Run: .venv/bin/python bench/profile_audit_deny.py [--checks 20000] [--kind identity]
        [--sources 1] [--mode deny|allow|deny-no-audit|all] [--profile FILE.prof] [--top 25]

Builds the Runtime exactly as `admitd serve` does (`runtime_from_config` on a YAML
config: dev PKI, a local KMS keyring, `audit:` on, a redis-server of its own on a free
port) and feeds CheckRequests through `AuthorizationService.Check`, 32 at a time (as
Envoy keeps several in flight). After the last one it waits until the audit writer has
appended everything, so the CPU measured (this process: `time.process_time`) includes
the background writer's sealing, hashing and Redis round trips. The Redis server's own
CPU is printed apart.

`--sources N` spreads the Checks over N client addresses (10.x.y.z), round robin: with
N >= --checks no two denials are identical, so nothing is coalesced and every denial
is sealed and appended as its own entry (the worst case for the audit writer).

Kinds of denial (`--kind`): `identity` (alice's valid certificate on a route that admits
only admins: identity_not_allowed, the default), `unmatched` (no route matches:
no_matching_route), `missing` (no certificate on a certificate route). `allow` is alice on
her own route (no audit entry: the always-allow floor of this harness).

`--profile FILE` runs the measured part under cProfile, writes FILE and prints the top
entries by own time and by cumulative time; for a sampling profile run the script under
`.venv/bin/py-spy record -f raw -o OUT --`. `--repeat N` runs the modes N times,
interleaved, and prints the least CPU of each. Numbers are noisy on a shared 2-core
machine: compare modes within one run. Before/after a change: run the same script with
`PYTHONPATH=<an older tree>/server` (it asks nothing of the audit log the older one lacks).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from admitd.config import load_config
from admitd.extauthz.service import AuthorizationService
from admitd.kms.local import create_keyring_file
from admitd.logs import DecisionLog
from admitd.pki import DEV_FILES, write_dev_pki
from admitd.runtime import Runtime, runtime_from_config
from tests.integration.redis_server import RedisServer

IN_FLIGHT = 32
KINDS = ("identity", "unmatched", "missing", "allow")


class _Context:
    """The two things the Check reads from a grpc.aio ServicerContext."""

    def time_remaining(self) -> float:
        return 0.2

    def invocation_metadata(self) -> tuple[()]:
        return ()


def _policies() -> dict[str, Any]:
    return {
        "unmatched": "deny",
        "require_https": True,
        "routes": [
            {
                "name": "api",
                "match": {"path_prefix": "/api/"},
                "identities": {"spiffe": ["spiffe://admitd.dev/user/*"]},
            },
            {
                "name": "ops",
                "match": {"path_prefix": "/ops/"},
                "identities": {"spiffe": ["spiffe://admitd.dev/admin/*"]},
            },
        ],
    }


def write_config(root: Path, redis_url: str, *, audit: bool) -> Path:
    pki = root / "pki"
    write_dev_pki(pki)
    keyring = root / "keyring.json"
    create_keyring_file(keyring, ["kms/session-secrets", "kms/device-telemetry", "kms/audit-log"])
    (root / "policies.yaml").write_text(yaml.safe_dump(_policies(), sort_keys=False))
    config: dict[str, Any] = {
        "listen": "127.0.0.1:9",  # never bound: the Check is called in-process
        "metrics_listen": "",
        "policies": "policies.yaml",
        "redis_url": redis_url,
        "tls": {
            "trust_bundle": f"pki/{DEV_FILES['trust']}",
            "crl_files": [f"pki/{DEV_FILES['crl']}"],
            "deny_list": f"pki/{DEV_FILES['deny_list']}",
        },
        "kms": {"provider": "local", "keyring": str(keyring)},
    }
    if audit:
        config["audit"] = {"spool_file": str(root / "audit-spool.jsonl"), "instance": "profile"}
    path = root / ("admitd.yaml" if audit else "admitd-no-audit.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def source_ip(n: int, sources: int) -> str:
    """One of `sources` addresses (10.x.y.z), or always 203.0.113.7 for one source."""
    if sources <= 1:
        return "203.0.113.7"
    k = n % sources
    return f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"


def check_request(kind: str, alice_pem: str, n: int, sources: int) -> CheckRequest:
    path = {"identity": "/ops/panel", "unmatched": "/nowhere", "missing": "/api/items"}.get(
        kind, "/api/items"
    )
    request = CheckRequest()
    attributes = request.attributes
    attributes.source.address.socket_address.address = source_ip(n, sources)
    attributes.source.address.socket_address.port_value = 40000 + n % 20000
    if kind != "missing":
        attributes.source.certificate = urllib.parse.quote(alice_pem)
    http = attributes.request.http
    http.id, http.method, http.path, http.host, http.scheme = (str(n), "GET", path, "api", "https")
    http.headers.update(
        {
            ":authority": "api.test",
            ":method": "GET",
            ":path": path,
            "x-forwarded-proto": "https",
            "x-request-id": f"req-{n}",
            "user-agent": "wrk",
        }
    )
    return request


@dataclass(frozen=True, slots=True)
class Result:
    mode: str
    checks: int
    cpu_seconds: float
    wall_seconds: float
    redis_cpu_seconds: float
    entries_appended: int

    def line(self) -> str:
        per = self.cpu_seconds / self.checks * 1e6
        redis_per = self.redis_cpu_seconds / self.checks * 1e6
        return (
            f"{self.mode:<16} {self.checks:>7} checks  {per:8.1f} us CPU/Check (admitd)"
            f"  {redis_per:6.1f} us (redis-server)  {self.checks / self.wall_seconds:8.0f}"
            f" Checks/s  {self.entries_appended} audit entries"
        )


def _redis_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drain(runtime: Runtime) -> int:
    """Wait for the audit writer to append everything queued; the stream length."""
    audit = runtime.audit
    if audit is None:
        return 0
    # `coalescing`: counts whose follow-up entry waits for its window to end (an older
    # tree has no such attribute).
    while audit.queued or getattr(audit, "coalescing", 0):
        await asyncio.sleep(0.05)  # polling costs CPU that would count as the audit's
    await asyncio.sleep(0.12)  # the last batch's round trip (the writer flushes every 50 ms)
    return int(await audit.client.xlen(audit.config.stream_key))


async def run_mode(
    config_path: Path,
    kind: str,
    args: argparse.Namespace,
    redis_pid: int,
    profiler: cProfile.Profile | None,
) -> tuple[int, float, float, float]:
    checks = args.checks
    runtime = runtime_from_config(load_config(config_path))
    await runtime.start()
    alice = (config_path.parent / "pki" / "alice.pem").read_text()
    requests = [check_request(kind, alice, n, args.sources) for n in range(checks)]
    sink = open(os.devnull, "w")  # noqa: SIM115 - the decision log's stderr, discarded
    service = AuthorizationService(
        runtime.engine, runtime.metrics, DecisionLog(sink.write), runtime.audit_decision
    )
    context = _Context()
    for request in requests[:200]:  # warm the certificate verdict cache and the code paths
        await service.Check(request, context)
    before = await _drain(runtime)
    cpu0, wall0, redis0 = time.process_time(), time.perf_counter(), _redis_cpu(redis_pid)
    if profiler is not None:
        profiler.enable()
    for start in range(0, checks, IN_FLIGHT):
        await asyncio.gather(
            *(service.Check(r, context) for r in requests[start : start + IN_FLIGHT])
        )
    after = await _drain(runtime)
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    redis_cpu = _redis_cpu(redis_pid) - redis0
    await runtime.close()
    if runtime.redis is not None:
        await runtime.redis.aclose()
    sink.close()
    return after - before, cpu, wall, redis_cpu


def _loop_factory() -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # what `admitd serve` runs on when installed


def measure(root: Path, server: RedisServer, mode: str, args: argparse.Namespace) -> Result:
    audit = mode != "deny-no-audit"
    kind = "allow" if mode == "allow" else args.kind
    config = write_config(root / mode, server.url, audit=audit)
    profiler = cProfile.Profile() if args.profile and mode == "deny" else None
    assert server.pid is not None
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        appended, cpu, wall, redis_cpu = runner.run(
            run_mode(config, kind, args, server.pid, profiler)
        )
    if profiler is not None:
        profiler.dump_stats(args.profile)
        _print_top(profiler, args.top)
    return Result(mode, args.checks, cpu, wall, redis_cpu, appended)


def _print_top(profiler: cProfile.Profile, top: int) -> None:
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(top)
        print(f"--- cProfile, deny mode, by {key} ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:8000])


class _PidRedis(RedisServer):
    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--kind", choices=KINDS[:-1], default="identity")
    parser.add_argument("--mode", choices=("deny", "allow", "deny-no-audit", "all"), default="all")
    parser.add_argument(
        "--sources", type=int, default=1, help="distinct client addresses (1: one attacker)"
    )
    parser.add_argument("--profile", help="write cProfile stats of the deny mode here")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the modes N times, interleaved; print each"
    )
    args = parser.parse_args()
    modes = ["allow", "deny-no-audit", "deny"] if args.mode == "all" else [args.mode]
    with tempfile.TemporaryDirectory(prefix="admitd-profile-") as work:
        root = Path(work)
        with _PidRedis(root / "redis") as server:
            results = [
                measure(root / f"run{n}", server, mode, args)
                for n in range(args.repeat)
                for mode in modes
            ]
    for result in results:
        print(result.line())
    if args.repeat > 1:
        _print_best(results)
    return 0


def _print_best(results: list[Result]) -> None:
    """The least CPU per Check of each mode: the run least disturbed by other work."""
    print("--- least CPU per Check of each mode ---")
    for mode in dict.fromkeys(r.mode for r in results):
        print(min((r for r in results if r.mode == mode), key=lambda r: r.cpu_seconds).line())


if __name__ == "__main__":
    raise SystemExit(main())
