"""Run admitd: the gRPC Check service, health, reflection, metrics, and background reloads."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time

import grpc
from aiohttp import web
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from admitd.admin.server import start_admin_server
from admitd.config import Config
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics, serve_metrics
from admitd.runtime import Runtime, runtime_from_config
from admitd.sessions.redis_store import RedisSessionStore
from admitd.web.app import build_web_app, start_web_server

__all__ = ["run", "serve"]

log = logging.getLogger(__name__)


def run(config: Config) -> None:
    """Blocking entry point for `admitd serve`."""
    asyncio.run(serve(config))


async def serve(config: Config, *, ready: asyncio.Event | None = None) -> None:
    runtime = runtime_from_config(config)
    metrics = Metrics()
    decisions = DecisionLog()
    server = grpc.aio.server()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
        AuthorizationService(runtime.engine, metrics, decisions), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = (
        external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(services, server)
    server.add_insecure_port(config.listen)
    if config.metrics_listen:
        serve_metrics(config.metrics_listen)
    # Everything loaded so far (policies, trust store, protobuf descriptors) lives
    # for the whole run: move it out of the collector's view, and collect young
    # objects less often, since a Check allocates many short-lived ones.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    await server.start()
    for name in ("", services[0]):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "admitd serving Check on %s, metrics on %s, policy %s",
        config.listen,
        config.metrics_listen or "(off)",
        runtime.engine.policy.version,
    )
    if isinstance(runtime.store, RedisSessionStore):
        runtime.store.start()
    web = await _start_web(runtime)
    admin = await _start_admin(runtime)
    poller = asyncio.create_task(_poll_revocation(runtime, metrics))
    flusher = asyncio.create_task(_flush_periodically(runtime, decisions))
    if ready is not None:
        ready.set()
    await _wait_for_stop_signal()
    poller.cancel()
    flusher.cancel()
    # Tell Envoy's health checks first, then let in-flight Checks finish.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(config.grace_seconds)
    if web is not None:
        await web.cleanup()
    if admin is not None:
        await admin.stop(config.grace_seconds)
    decisions.flush()
    await runtime.engine.flush_last_seen()
    await runtime.store.close()
    log.info("admitd stopped")


async def _flush_periodically(
    runtime: Runtime, decisions: DecisionLog, interval: float = 0.25
) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(interval)
        decisions.flush()
        ticks += 1
        if ticks % 4 == 0:  # last-seen times once a second: idle expiry needs no finer grain
            await runtime.engine.flush_last_seen()


async def _start_web(runtime: Runtime) -> web.AppRunner | None:
    """The step-up pages, when `web:` is configured (Envoy routes /.admitd/ to them)."""
    factors, config = runtime.factors, runtime.config
    if factors is None or factors.passkeys is None or factors.signer is None or config.web is None:
        return None
    app = build_web_app(
        store=runtime.store,
        totp=factors.totp,
        passkeys=factors.passkeys,
        signer=factors.signer,
        cookie_name=config.sessions.cookie_name,
        clock=time.time,
    )
    runner = await start_web_server(app, config.web.listen)
    log.info("step-up pages on %s", config.web.listen)
    return runner


async def _start_admin(runtime: Runtime) -> grpc.aio.Server | None:
    """admitd's own API (sessions, MFA enrolment, revocation), mTLS and admin principals only."""
    config, factors = runtime.config, runtime.factors
    if config.admin is None or factors is None:
        return None
    admin = await start_admin_server(
        config.admin, config.tls.trust_bundles, runtime.store, factors.totp, config.sessions
    )
    log.info("admin API (mTLS) on %s", config.admin.listen)
    return admin


async def _poll_revocation(runtime: Runtime, metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(runtime.config.tls.revocation_poll_seconds)
        try:
            if runtime.reload_revocation():
                metrics.revocation_reloads.labels("applied").inc()
                metrics.security_events.labels("revocation_reload", "applied").inc()
        except Exception:
            log.exception("revocation reload failed; keeping previous data")
            metrics.revocation_reloads.labels("failed").inc()


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
