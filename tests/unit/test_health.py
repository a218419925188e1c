"""Readiness: every check named, failures and timeouts are failed checks, never crashes."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from admitd.envelope import Sealer
from admitd.health import HealthCheck, Readiness
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.kms.base import WrappedDek
from admitd.ops_http import ops_app


def probe_returning(ok: bool, detail: str, calls: list[int] | None = None):  # type: ignore[no-untyped-def]
    async def probe() -> tuple[bool, str]:
        if calls is not None:
            calls.append(1)
        return ok, detail

    return probe


async def test_a_report_names_each_check_and_is_ready_only_if_all_are() -> None:
    readiness = Readiness(
        [
            HealthCheck("a", probe_returning(True, "fine")),
            HealthCheck("b", probe_returning(False, "down")),
        ]
    )
    report = await readiness.report()
    assert not report.ready
    assert report.as_json() == {
        "status": "not_ready",
        "checks": {
            "a": {"ok": True, "detail": "fine"},
            "b": {"ok": False, "detail": "down"},
            "shutdown": {"ok": True, "detail": ""},
        },
    }


async def test_a_raising_or_hanging_probe_is_a_failed_check() -> None:
    async def raises() -> tuple[bool, str]:
        raise ConnectionError("Connection refused\nsecond line")

    async def hangs() -> tuple[bool, str]:
        await asyncio.sleep(10)
        return True, ""

    readiness = Readiness([HealthCheck("r", raises), HealthCheck("h", hangs)], timeout=0.05)
    results = {r.name: r for r in (await readiness.report()).results}
    assert results["r"].detail == "ConnectionError: Connection refused"
    assert not results["h"].ok and results["h"].detail == "no answer within 0.05 s"


async def test_results_are_cached_for_their_check_only() -> None:
    now = [100.0]
    slow_calls: list[int] = []
    fast_calls: list[int] = []
    readiness = Readiness(
        [
            HealthCheck("slow", probe_returning(True, "", slow_calls), cache_seconds=10),
            HealthCheck("fast", probe_returning(True, "", fast_calls), cache_seconds=1),
        ],
        clock=lambda: now[0],
    )
    await readiness.report()
    now[0] += 2
    await readiness.report()
    assert (len(slow_calls), len(fast_calls)) == (1, 2)
    now[0] += 10
    await readiness.report()
    assert len(slow_calls) == 2


async def test_draining_is_not_ready() -> None:
    readiness = Readiness([HealthCheck("a", probe_returning(True, ""))])
    readiness.draining = True
    report = await readiness.report()
    assert not report.ready and report.as_json()["checks"]["shutdown"] == {  # type: ignore[index]
        "ok": False,
        "detail": "draining",
    }


async def test_the_ops_app_serves_three_paths_and_404s_the_rest() -> None:
    registry = CollectorRegistry()
    Counter("probe_total", "a test counter", registry=registry).inc()
    ready = [True]

    async def probe() -> tuple[bool, str]:
        return ready[0], "" if ready[0] else "redis: down"

    app = ops_app(registry, Readiness([HealthCheck("redis", probe, cache_seconds=0)]))
    async with TestClient(TestServer(app)) as client:
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and "probe_total 1.0" in await metrics.text()
        assert (await client.get("/healthz")).status == 200
        readyz = await client.get("/readyz")
        assert readyz.status == 200 and readyz.headers["Cache-Control"] == "no-store"
        ready[0] = False
        readyz = await client.get("/readyz")
        assert readyz.status == 503
        assert (await readyz.json())["checks"]["redis"] == {"ok": False, "detail": "redis: down"}
        for path in ("/", "/metricsx", "/healthz/", "/ready"):
            assert (await client.get(path)).status == 404, path
        assert (await client.post("/readyz")).status == 405


async def test_the_kms_probe_wraps_and_unwraps_under_every_alias() -> None:
    assert await Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)).probe() == ""


class LyingKms:
    """Unwraps to a different key: a broken provider (or the wrong key version)."""

    async def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        return WrappedDek(1, dek)

    async def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        return bytes(32)

    async def active_version(self, alias: str) -> int:
        return 1


async def test_the_kms_probe_notices_a_provider_that_returns_the_wrong_key() -> None:
    problem = await Sealer(LyingKms()).probe()
    assert problem.endswith("unwrap returned another key")


async def test_probes_arriving_together_share_one_run() -> None:
    calls: list[int] = []

    async def slow() -> tuple[bool, str]:
        calls.append(1)
        await asyncio.sleep(0.05)
        return True, ""

    readiness = Readiness([HealthCheck("kms", slow, cache_seconds=0)])
    reports = await asyncio.gather(*(readiness.report() for _ in range(40)))
    assert len(calls) == 1 and all(r.ready for r in reports)
    await readiness.report()  # once it has finished, the next probe runs again
    assert len(calls) == 2
