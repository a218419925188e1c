"""The readiness checks of a running admitd, built from what its config turned on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from admitd.audit.log import AuditLog
from admitd.audit.spool import ALERT_RATIO
from admitd.envelope import Sealer
from admitd.health import HealthCheck, Probe, Readiness
from admitd.policy.watch import PolicyWatcher
from admitd.runtime import Runtime
from admitd.sessions.redis_eviction import eviction_policy, eviction_problem

__all__ = [
    "EVICTION_CACHE_SECONDS",
    "KMS_CACHE_SECONDS",
    "SPOOL_NOT_READY_RATIO",
    "readiness_for",
    "ready_check_gauge",
]

# An audit spool this full is about to lose entries (it only fills while Redis is away).
SPOOL_NOT_READY_RATIO = max(ALERT_RATIO, 0.95)
KMS_CACHE_SECONDS = 10.0  # an HSM or cloud KMS round trip is not for every probe
EVICTION_CACHE_SECONDS = 5.0  # a CONFIG GET per probe is more than the setting's pace needs


def readiness_for(runtime: Runtime) -> Readiness:
    checks = [HealthCheck("policy", _policy(runtime, runtime.policy_watcher))]
    if runtime.redis is not None:
        checks.append(HealthCheck("redis", _redis(runtime)))
        checks.append(HealthCheck("redis_eviction", _eviction(runtime), EVICTION_CACHE_SECONDS))
    if runtime.sealer is not None:
        checks.append(HealthCheck("kms", _kms(runtime.sealer), KMS_CACHE_SECONDS))
    if runtime.audit is not None:
        checks.append(HealthCheck("audit_spool", _spool(runtime.audit)))
    return Readiness(checks)


def ready_check_gauge(registry: CollectorRegistry) -> Gauge:
    """1 or 0 per readiness check, for dashboards and alerts (updated with gRPC health)."""
    return Gauge(
        "admitd_ready_check",
        "Whether each /readyz check passes (1) or fails (0)",
        ["check"],
        registry=registry,
        # With workers (prometheus multiprocess mode): a check fails if it fails in any
        # live worker; ignored in a single process.
        multiprocess_mode="livemin",
    )


def _policy(runtime: Runtime, watcher: PolicyWatcher) -> Probe:
    async def probe() -> tuple[bool, str]:
        # Loaded before any port opened. A refused reload keeps the previous policy
        # deciding, so it is reported here (and counted in admitd_policy_reloads_total
        # {outcome="refused"}), never made unready.
        detail = f"version {runtime.policy.version}"
        if watcher.last_error:
            detail += f"; the last reload was refused: {watcher.last_error}"
        return True, detail

    return probe


def _redis(runtime: Runtime) -> Probe:
    client = runtime.redis
    assert client is not None

    async def probe() -> tuple[bool, str]:
        await client.ping()
        return True, "PING answered"

    return probe


def _eviction(runtime: Runtime) -> Probe:
    """Not ready while Redis may evict admitd's keys (`sessions.redis_eviction`)."""
    client = runtime.redis
    assert client is not None

    async def probe() -> tuple[bool, str]:
        policy = await eviction_policy(client)
        problem = eviction_problem(policy)
        if problem is not None:
            return False, problem + "; set maxmemory-policy noeviction"
        return True, f"maxmemory-policy {policy or 'not readable (CONFIG refused)'}"

    return probe


def _kms(sealer: Sealer) -> Probe:
    async def probe() -> tuple[bool, str]:
        problem = await sealer.probe()
        return (False, problem) if problem else (True, "wrap and unwrap under every alias")

    return probe


def _spool(audit: AuditLog) -> Probe:
    async def probe() -> tuple[bool, str]:
        ratio = audit.spool.full_ratio
        detail = f"{ratio:.0%} full"
        if ratio >= SPOOL_NOT_READY_RATIO:
            return False, f"{detail}: audit entries are about to be lost (is Redis reachable?)"
        return True, detail

    return probe
