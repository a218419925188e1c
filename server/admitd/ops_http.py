"""The metrics listener: `/metrics`, `/healthz` and `/readyz`; every other path is 404.

A probe pointed at the wrong path must fail, not read a 200 from whatever answers.

In a worker (prometheus-client's multiprocess mode, docs/workers.md) this listens on a
private Unix socket for the supervisor, and `/metrics` holds only what the shared metric
files do not: collectors computed at scrape time (certificate expiry, key ages). The
supervisor merges the files of every worker and serves the result on `metrics_listen`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from admitd.health import Readiness

__all__ = ["NO_STORE", "listen_on", "multiprocess_dir", "ops_app", "start_ops_server"]

NO_STORE = {"Cache-Control": "no-store"}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNIX_PREFIX = "unix://"  # as in `listen` (admitd.config)


def ops_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    directory = multiprocess_dir()
    exposed = _ScrapeTimeOnly(registry, directory) if directory is not None else registry

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(exposed)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        # Answering at all is the proof: the event loop that runs Checks ran this.
        return web.json_response({"status": "alive"}, headers=NO_STORE)

    async def readyz(request: web.Request) -> web.Response:
        report = await readiness.report()
        status = 200 if report.ready else 503
        return web.json_response(report.as_json(), status=status, headers=NO_STORE)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_ops_server(
    address: str, registry: CollectorRegistry, readiness: Readiness
) -> web.AppRunner:
    """Serve on HOST:PORT (or unix:///path) in this event loop; stop with `runner.cleanup()`."""
    return await listen_on(ops_app(registry, readiness), address)


async def listen_on(app: web.Application, address: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site: web.BaseSite
        if address.startswith(UNIX_PREFIX):
            site = web.UnixSite(runner, address.removeprefix(UNIX_PREFIX))
        else:
            host, _, port = address.rpartition(":")
            site = web.TCPSite(runner, host.strip("[]"), int(port))
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def multiprocess_dir() -> Path | None:
    """The shared metric files' directory when this process is a worker, else None."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class _ScrapeTimeOnly:
    """This process's families that are not in its metric files: counters, histograms and
    gauges are in the files (the supervisor sums them over workers); what collectors
    compute at scrape time is not, so the supervisor takes it from here."""

    def __init__(self, registry: CollectorRegistry, directory: Path) -> None:
        self._registry = registry
        self._own_files = str(directory / f"*_{os.getpid()}.db")

    def collect(self) -> Iterable[Metric]:
        merged = MultiProcessCollector.merge(glob.glob(self._own_files))  # type: ignore[no-untyped-call]
        in_files = {metric.name for metric in merged}
        for family in self._registry.collect():
            # An empty family (a labelled metric nobody used yet) would only repeat a name.
            if family.name not in in_files and family.samples:
                yield family
