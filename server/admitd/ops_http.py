"""The metrics listener: `/metrics`, `/healthz` and `/readyz`; every other path is 404.

A probe pointed at the wrong path must fail, not read a 200 from whatever answers.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from admitd.health import Readiness

__all__ = ["ops_app", "start_ops_server"]

_NO_STORE = {"Cache-Control": "no-store"}


def ops_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        # Answering at all is the proof: the event loop that runs Checks ran this.
        return web.json_response({"status": "alive"}, headers=_NO_STORE)

    async def readyz(request: web.Request) -> web.Response:
        report = await readiness.report()
        status = 200 if report.ready else 503
        return web.json_response(report.as_json(), status=status, headers=_NO_STORE)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_ops_server(
    address: str, registry: CollectorRegistry, readiness: Readiness
) -> web.AppRunner:
    """Serve on HOST:PORT in this event loop; stop with `await runner.cleanup()`."""
    runner = web.AppRunner(ops_app(registry, readiness), access_log=None)
    await runner.setup()
    host, _, port = address.rpartition(":")
    await web.TCPSite(runner, host.strip("[]"), int(port)).start()
    return runner
