"""The faults, each injected while the load runs: warm-up, fault held, recovery window.

Every fault returns its figures; the CI tests assert on them, `run_matrix.py` tabulates.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.pki_fixtures import PkiSet
from tests.reliability.authz_timeout import authz_slower_than_envoy
from tests.reliability.cluster_fault import CLUSTER_SETTINGS, cluster_epilogue, cluster_failover
from tests.reliability.connection_limit import redis_connection_limit
from tests.reliability.envoy_edge import CHECK_SERVICE
from tests.reliability.fault_run import CI, FULL, Fault, Injector, Run, Size
from tests.reliability.figures import FaultFigures, audit_count, figures_from_load
from tests.reliability.load import LoadResult, ProbeMix, run_load
from tests.reliability.oom_fault import oom_epilogue, redis_out_of_memory
from tests.reliability.population import Credentials, fixed_probes, session_probes
from tests.reliability.replica_fault import REPLICA_SETTINGS, replica_killed
from tests.reliability.sentinel_fault import (
    SENTINEL_SETTINGS,
    sentinel_failover,
    verify_as_configured,
)
from tests.reliability.spool_fault import SPOOL_SETTINGS, spool_replay_crash
from tests.reliability.stack import ReliabilityStack, StackSettings, start_stack

__all__ = ["CI", "FAULTS", "FULL", "Fault", "Run", "Size", "run_fault"]


async def _redis_restart_empty(run: Run) -> None:
    await asyncio.sleep(run.size.warm)
    await asyncio.to_thread(run.stack.redis.kill)
    # Decided from now on, an entry cannot have reached the dead Redis: it must be spooled
    # or written to the new one. What the old Redis held is gone with it, not lost by admitd.
    run.audit_since = time.time()
    for probe in run.sessions:
        probe.valid_until = time.monotonic()
    await asyncio.sleep(run.size.hold)
    await asyncio.to_thread(run.stack.redis.start)
    for probe in run.sessions:
        probe.refused_from = time.monotonic()  # gone with the data: refusing is correct
    run.fault_end = time.monotonic()
    fresh = await asyncio.to_thread(
        session_probes, run.stack.redis_url, run.creds, 2
    )  # users sign in again
    run.mix.add(fresh)


async def _redis_restart_with_data(run: Run) -> None:
    await asyncio.sleep(run.size.warm)
    await asyncio.to_thread(run.stack.redis.kill)
    await asyncio.sleep(run.size.hold)
    await asyncio.to_thread(run.stack.redis.start)
    run.fault_end = time.monotonic()


async def _redis_freeze(run: Run) -> None:
    await asyncio.sleep(run.size.warm)
    run.stack.redis.freeze()
    await asyncio.sleep(run.size.hold)
    run.stack.redis.thaw()
    run.fault_end = time.monotonic()


async def _redis_slow(run: Run) -> None:
    proxy = run.stack.proxy
    assert proxy is not None
    await asyncio.sleep(run.size.warm)
    steps = (0.05, 0.15, 0.3, 0.5)
    for delay in steps:
        proxy.delay = delay
        await asyncio.sleep(run.size.hold / len(steps))
    proxy.delay = 0.0
    run.fault_end = time.monotonic()


async def _admitd_sigkill(run: Run) -> None:
    await asyncio.sleep(run.size.warm)
    run.stack.signal_admitd(signal.SIGKILL)
    await asyncio.to_thread(run.stack.wait_admitd_exit)
    down = time.monotonic()
    await asyncio.sleep(run.size.hold)
    run.down = (down, time.monotonic())
    run.stack.start_admitd(wait=False)
    run.fault_end = time.monotonic()


async def _admitd_sigterm(run: Run) -> None:
    """Checks are in flight: each Redis round trip is held 40 ms by the proxy (no session cache)."""
    proxy = run.stack.proxy
    assert proxy is not None
    proxy.delay = 0.02
    process = run.stack.admitd_process
    assert process is not None
    watcher = HealthWatcher(run.stack.authz_port)
    watcher.start()
    await asyncio.sleep(run.size.warm)
    run.terminated_at = time.monotonic()
    run.stack.signal_admitd(signal.SIGTERM)
    limit = run.stack_settings_grace + 20.0
    try:
        run.exit_code = await asyncio.to_thread(run.stack.wait_admitd_exit, limit)
    except subprocess.TimeoutExpired:  # a finding, not a harness failure: record, go on
        run.notes.append(f"admitd still running {limit:.0f} s after SIGTERM; SIGKILLed")
        run.stack.signal_admitd(signal.SIGKILL)
        await asyncio.to_thread(run.stack.wait_admitd_exit)
    run.exited_at, run.exited_wall = time.monotonic(), time.time()
    watcher.stop()
    run.health = watcher.seen
    proxy.delay = 0.0
    await asyncio.sleep(max(0.0, run.size.hold - (time.monotonic() - run.terminated_at)))
    run.stack.start_admitd(wait=False)
    run.fault_end = time.monotonic()


class HealthWatcher:
    """gRPC health Watch on the Check service, in a thread: (monotonic time, status)."""

    def __init__(self, port: int) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.seen: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._channel.close()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        stub = health_pb2_grpc.HealthStub(self._channel)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=CHECK_SERVICE))
        try:
            for reply in stream:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                self.seen.append((time.monotonic(), name))
                if name == "NOT_SERVING" and len(self.seen) > 1:
                    stream.cancel()  # seen; an open Watch would hold admitd's drain
                    return
        except grpc.RpcError as exc:
            self.seen.append((time.monotonic(), f"rpc-error:{exc.code().name}"))
        except ValueError:  # the channel was closed under it
            return


FAULTS = {
    f.name: f
    for f in (
        Fault("redis-restart-empty", "Redis SIGKILL, restarted empty", _redis_restart_empty),
        Fault(
            "redis-restart-data",
            "Redis SIGKILL, restarted with its data (AOF)",
            _redis_restart_with_data,
            StackSettings(durable_redis=True),
        ),
        Fault("redis-freeze", "Redis frozen (SIGSTOP), then SIGCONT", _redis_freeze),
        Fault(
            "redis-slow",
            "Redis slowed 50-500 ms (delaying proxy)",
            _redis_slow,
            StackSettings(redis_proxy=True),
        ),
        Fault("admitd-sigkill", "admitd SIGKILL, restarted", _admitd_sigkill),
        Fault(
            "admitd-sigterm",
            "admitd SIGTERM with Checks in flight, restarted",
            _admitd_sigterm,
            StackSettings(redis_proxy=True, session_cache=False),
        ),
        Fault(
            "audit-spool-crash",
            "Redis away, thousands spooled; admitd SIGKILLed mid-replay, restarted",
            spool_replay_crash,
            SPOOL_SETTINGS,
        ),
        Fault(
            "redis-oom",
            "Redis at its memory limit (maxmemory, noeviction: writes refused)",
            redis_out_of_memory,
            StackSettings(),
            oom_epilogue,
        ),
        Fault(
            "redis-maxclients",
            "Redis connection limit reached (maxclients, admitd's connections dropped)",
            redis_connection_limit,
        ),
        Fault(
            "replica-killed",
            "one of two admitd replicas SIGKILLed (restarted after the hold)",
            replica_killed,
            REPLICA_SETTINGS,
        ),
        Fault(
            "authz-timeout",
            "admitd slower than Envoy's 0.5 s ext_authz timeout (delaying proxy)",
            authz_slower_than_envoy,
            StackSettings(authz_proxy=True),
        ),
        Fault(
            "sentinel-failover",
            "Sentinel: master SIGKILLed, replica promoted",
            sentinel_failover,
            SENTINEL_SETTINGS,
            verify_as_configured,
        ),
        Fault(
            "redis-cluster-failover",
            "Redis Cluster: the audit stream's master SIGKILLed, its replica promoted",
            cluster_failover,
            CLUSTER_SETTINGS,
            cluster_epilogue,
        ),
    )
}


def run_fault(fault: Fault, pki: PkiSet, work: Path, size: Size) -> tuple[FaultFigures, Run]:
    """Start a stack of its own, run the load with the fault in it, count, stop."""
    stack = start_stack(pki, work, fault.settings)
    try:
        creds = Credentials(pki)
        sessions = session_probes(stack.redis_url, creds, 1)
        mix = ProbeMix([*fixed_probes(creds), *sessions])
        run = Run(stack, mix, creds, size, sessions)
        run.stack_settings_grace = fault.settings.grace_seconds
        _warm_up(stack, mix)
        load = asyncio.run(_load_with_fault(run, fault.inject))
        for side in run.side_loads:
            load = load.merged(side)
        figures = figures_from_load(fault.name, load, run.fault_end)
        stack.wait_audit_settled()
        figures.audit = audit_count(
            stack.decision_logs, load, stack.export_audit(), since=run.audit_since
        )
        verified = stack.verify_audit()
        figures.chain_ok = verified.returncode == 0
        if not figures.chain_ok:
            figures.notes.append("audit verify: " + (verified.stdout + verified.stderr)[-400:])
        if fault.epilogue is not None:
            fault.epilogue(run)
        figures.notes += run.notes
        run.load = load
        return figures, run
    finally:
        stack.stop()


def _warm_up(stack: ReliabilityStack, mix: ProbeMix) -> None:
    """Until every must-admit probe is admitted once (caches and connections warm)."""
    deadline = time.monotonic() + 60
    base = f"https://localhost:{stack.https_port}"
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        load = asyncio.run(
            run_load(
                base,
                stack.pki.directory / "root.pem",
                mix,
                rate=50,
                seconds=len(mix.probes) / 50,
                tag=f"warm{attempt}-",
            )
        )
        if all(o.admitted for o in load.outcomes if o.expect.value == "admit"):
            return
        time.sleep(0.5)
    raise TimeoutError("the healthy stack never admitted every must-admit probe")


async def _load_with_fault(run: Run, inject: Injector) -> LoadResult:
    base = f"https://localhost:{run.stack.https_port}"
    load = asyncio.create_task(
        run_load(
            base,
            run.stack.pki.directory / "root.pem",
            run.mix,
            rate=run.size.rate,
            seconds=run.size.seconds,
        )
    )
    await inject(run)
    return await load
