"""The supervisor's `metrics_listen`: /metrics merged over workers, /healthz, /readyz; else 404."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from admitd.ops_http import NO_STORE
from admitd.workers_health import WorkerProbes, liveness, readiness
from admitd.workers_metrics import WorkerFiles, WorkerView, supervisor_exposition

__all__ = ["supervisor_ops_app"]


def supervisor_ops_app(
    views: Callable[[], Sequence[WorkerView]],
    files: WorkerFiles,
    probes: WorkerProbes,
    draining: Callable[[], bool],
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        current = views()
        # What collectors compute at scrape time (certificate expiry, key ages) is in no
        # file: it comes from the first worker that answers (workers load the same files).
        scrape_time = await _first_answer(probes, current)
        body = supervisor_exposition(files, lambda: current) + scrape_time
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        status, body = liveness(await probes.ask_all(views(), "/healthz"))
        return web.json_response(body, status=status, headers=NO_STORE)

    async def readyz(request: web.Request) -> web.Response:
        answers = await probes.ask_all(views(), "/readyz")
        status, body = readiness(answers, draining=draining())
        return web.json_response(body, status=status, headers=NO_STORE)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def _first_answer(probes: WorkerProbes, views: Sequence[WorkerView]) -> bytes:
    for view in views:
        if view.state == "ready":
            text = await probes.text(view.index, "/metrics")
            if text is not None:
                return text
    return b""
