"""Run admitd: the gRPC Check service, health, reflection, metrics, and background reloads."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Gauge

from admitd.admin.server import start_admin_server
from admitd.audit.entry import AuditEntry, AuditEvent
from admitd.audit.events import AuditLogEvents
from admitd.config import UNIX_PREFIX, Config
from admitd.custody.provider import check_running_provider
from admitd.custody.wiring import keys_handler_from_parts
from admitd.errors import AdmitdError, ConfigError
from admitd.extauthz.denial_page import DenialPages
from admitd.extauthz.service import AuthorizationService
from admitd.health import Readiness
from admitd.httpauthz.service import HttpCheckService
from admitd.kms.audit import LogAuditEvents
from admitd.logs import DecisionLog
from admitd.metrics import EventLoopTasks
from admitd.mfa.ports import TotpFactor
from admitd.oidc.handlers import OidcRoutes, add_oidc_routes
from admitd.oidc.provider import HttpClient, OidcProvider, ProviderUnavailable
from admitd.ops_http import start_ops_server
from admitd.readiness import readiness_for, ready_check_gauge
from admitd.risk.servicer import risk_handler
from admitd.runtime import Runtime, runtime_from_config
from admitd.sessions.redis_eviction import refuse_evicting_redis
from admitd.sessions.tokens import SessionRef
from admitd.tls_listen import check_server_credentials
from admitd.tracing import configure_tracing, tracing
from admitd.web.app import build_web_app, start_web_server
from admitd.web.dev_sign_in import DEV_SIGN_IN_PATH, DevSignIn, add_dev_sign_in_routes
from admitd.web.handlers import VerifiedHook
from admitd.web.return_to import ReturnToSigner

if TYPE_CHECKING:
    from admitd.httpauthz.listener import HttpAuthzListener

__all__ = ["run", "serve"]

log = logging.getLogger(__name__)


def run(config: Config) -> None:
    """Blocking entry point for `admitd serve`, on uvloop when installed (`event_loop`)."""
    with asyncio.Runner(loop_factory=loop_factory(config.event_loop)) as runner:
        runner.run(serve(config))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for `uvloop`, and for `auto` when it is installed; else asyncio's."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":  # the config check said it was there
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve(
    config: Config, *, ready: asyncio.Event | None = None, pages_and_admin: bool = True
) -> None:
    # pages_and_admin=False: a worker other than the first (docs/workers.md) serves Check only.
    configure_tracing()  # OTEL_* environment; off by default
    runtime = runtime_from_config(config)
    await _check_kms_provider(runtime)  # before any port opens
    decisions = DecisionLog()
    readiness = readiness_for(runtime)
    gauge = ready_check_gauge(runtime.registry)
    runtime.registry.register(EventLoopTasks(asyncio.get_running_loop()))
    # Health and metrics listen before the Check port binds (gRPC binds when a port is
    # added, before start): whoever sees the Check port open can also probe readiness.
    ops = await _start_ops(config, runtime, readiness)
    server, health_servicer = _grpc_server(runtime, decisions)
    # Everything loaded so far (policies, trust store, protobuf descriptors) lives
    # for the whole run: move it out of the collector's view, and collect young
    # objects less often, since a Check allocates many short-lived ones.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    # Before the port opens: a SIGHUP from config management that arrives once anyone
    # can see admitd listening must reload, not kill it (SIGHUP's default action).
    _reload_on_sighup(runtime)
    await refuse_evicting_redis(runtime.redis)  # before anyone can reach the port
    await server.start()
    # "" is liveness (the server runs); the Check service's status is readiness.
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    http_authz = await _start_http_authz(runtime, decisions)
    log.info(
        "admitd serving Check on %s, metrics on %s, policy %s, event loop %s",
        " and ".join(filter(None, (config.listen, _tls_address(config)))),
        config.metrics_listen or "(off)",
        runtime.policy.version,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
    )
    await runtime.start()
    web = await _start_web(runtime) if pages_and_admin else None
    admin = await _start_admin(runtime) if pages_and_admin else None
    await _track_readiness_once(readiness, health_servicer, gauge)
    tasks = _background_tasks(runtime, decisions)
    tasks.append(asyncio.create_task(_track_readiness(readiness, health_servicer, gauge)))
    if ready is not None:
        ready.set()
    await _wait_for_stop_signal()
    for task in tasks:
        task.cancel()
    # Tell Envoy's and Kubernetes' health checks first, then let in-flight Checks finish.
    readiness.draining = True
    await health_servicer.enter_graceful_shutdown()
    await asyncio.gather(
        server.stop(config.grace_seconds),
        *([http_authz.close(config.grace_seconds)] if http_authz is not None else []),
    )
    if web is not None:
        await web.cleanup()
    if admin is not None:
        await admin.stop(config.grace_seconds)
    await _close(runtime, decisions)
    if ops is not None:
        await ops.cleanup()
    tracing.shutdown()
    log.info("admitd stopped")


async def _start_ops(
    config: Config, runtime: Runtime, readiness: Readiness
) -> web.AppRunner | None:
    """/metrics, /healthz and /readyz on `metrics_listen`, in this event loop."""
    if not config.metrics_listen:
        return None
    try:
        return await start_ops_server(config.metrics_listen, runtime.registry, readiness)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.metrics_listen}: {exc.strerror}", key="metrics_listen"
        ) from None


async def _start_http_authz(runtime: Runtime, decisions: DecisionLog) -> HttpAuthzListener | None:
    """Envoy's HTTP ext_authz on `http_listen` (docs/http-authz.md), in this event loop."""
    address = runtime.config.http_listen
    if not address:
        return None
    from admitd.httpauthz.listener import start_http_authz  # httptools only when asked for

    service = HttpCheckService(
        runtime.engine,
        runtime.metrics,
        decisions,
        runtime.audit_decision,
        DenialPages(runtime.revocation.issuers.issuer_names()),
        with_caller=_needs_caller(runtime.config),
    )
    listener = await start_http_authz(address, service)
    log.info("admitd serving HTTP ext_authz on %s", address)
    return listener


READINESS_INTERVAL = 2.0  # seconds between gRPC health updates


async def _track_readiness(
    readiness: Readiness, health_servicer: health.aio.HealthServicer, gauge: Gauge
) -> None:
    while True:
        await asyncio.sleep(READINESS_INTERVAL)
        await _track_readiness_once(readiness, health_servicer, gauge)


async def _track_readiness_once(
    readiness: Readiness, health_servicer: health.aio.HealthServicer, gauge: Gauge
) -> None:
    """gRPC health of the Check service, and admitd_ready_check, say what /readyz says."""
    report = await readiness.report()
    for result in report.results:
        gauge.labels(result.name).set(1 if result.ok else 0)
    if readiness.draining:
        return  # enter_graceful_shutdown has the last word
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if report.ready
        else (health_pb2.HealthCheckResponse.NOT_SERVING)
    )
    await health_servicer.set(_CHECK_SERVICE, status)
    if report.ready == readiness.last_ready:
        return  # log changes only, not every interval
    readiness.last_ready = report.ready
    if report.ready:
        log.info("ready")
    else:
        failing = ", ".join(f"{r.name} ({r.detail})" for r in report.results if not r.ok)
        log.warning("not ready: %s", failing)


def _tls_address(config: Config) -> str:
    return f"{config.tls_listen.address} (TLS)" if config.tls_listen is not None else ""


_CHECK_SERVICE = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name


def _grpc_server(
    runtime: Runtime, decisions: DecisionLog
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    # Explicit, as grpc's default differs by platform: workers share the Check port.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    # Pages for browsers name the CAs whose certificates are accepted.
    pages = DenialPages(runtime.revocation.issuers.issuer_names())
    service = AuthorizationService(
        runtime.engine,
        runtime.metrics,
        decisions,
        runtime.audit_decision,
        pages,
        with_caller=_needs_caller(runtime.config),
    )
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (_CHECK_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    _add_check_ports(server, runtime.config)
    return server, health_servicer


def _needs_caller(config: Config) -> bool:
    """Whether a Check must know which Envoy asked (only then is gRPC's peer read)."""
    return config.mesh is not None or any(p.caller for p in config.trusted_proxies)


def _add_check_ports(server: grpc.aio.Server, config: Config) -> None:
    if config.listen.startswith(UNIX_PREFIX):
        _add_unix_port(server, config.listen)
    elif config.listen:
        if not _is_loopback(config.listen):
            log.warning(
                "Check listens in plaintext on %s: set tls_listen where it is reachable"
                " beyond this host or pod",
                config.listen,
            )
        server.add_insecure_port(config.listen)
    tls = config.tls_listen
    if tls is not None:
        try:
            server.add_secure_port(tls.address, check_server_credentials(tls))
        except RuntimeError as exc:  # grpc's "Failed to bind"
            raise ConfigError(f"cannot listen on {tls.address}: {exc}", key="tls_listen") from None


def _add_unix_port(server: grpc.aio.Server, address: str) -> None:
    """The socket is created rw for owner and group only: whoever can open it may ask
    Check questions (and, with `mesh:`, may be a trusted caller). gRPC replaces a stale
    socket left by a previous run and removes it on stop."""
    previous = os.umask(0o117)
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}", key="listen") from None
    finally:
        os.umask(previous)


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith(("127.", "unix"))


def _background_tasks(runtime: Runtime, decisions: DecisionLog) -> list[asyncio.Task[None]]:
    tasks = [
        asyncio.create_task(_poll_revocation(runtime)),
        asyncio.create_task(_poll_policies(runtime)),
        asyncio.create_task(_flush_periodically(runtime, decisions)),
    ]
    if runtime.reputation is not None:
        interval = runtime.config.risk.reputation_poll_seconds
        tasks.append(asyncio.create_task(runtime.reputation.watch(interval)))
    return tasks


async def _close(runtime: Runtime, decisions: DecisionLog) -> None:
    await runtime.close()
    # After the audit's last batch: a Check cancelled while it waited for its entry gets
    # its decision log line when the entry is durable (durable answers), that is, now.
    decisions.flush()


async def _flush_periodically(
    runtime: Runtime, decisions: DecisionLog, interval: float = 0.25
) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(interval)
        decisions.flush()
        ticks += 1
        if ticks % 4 == 0:  # last-seen times once a second: idle expiry needs no finer grain
            await runtime.flush_last_seen()


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
        on_verified=_promote_sighting(runtime),
        device_header=config.risk.device_id_header,
        form_targets=(_origin(config.oidc.issuer),) if config.oidc is not None else (),
    )
    _add_sign_in(app, runtime, factors.signer)
    _add_dev_sign_in(app, runtime, factors.totp, factors.signer)
    runner = await start_web_server(app, config.web.listen)
    log.info("step-up pages on %s", config.web.listen)
    return runner


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _add_sign_in(app: web.Application, runtime: Runtime, signer: ReturnToSigner) -> None:
    """OIDC sign-in and logout, when `oidc:` is configured; the IdP is asked once at start,
    in the background (an IdP that is down delays nothing)."""
    config = runtime.config
    if config.oidc is None or config.web is None:
        return
    client = HttpClient()
    provider = OidcProvider(config.oidc, client, metrics=runtime.idp_metrics)
    discovery = asyncio.create_task(_discover_at_start(provider))

    async def close(_app: web.Application) -> None:
        discovery.cancel()
        await client.close()

    app.on_cleanup.append(close)
    routes = OidcRoutes(
        provider=provider,
        store=runtime.store,
        signer=signer,
        sessions=config.sessions,
        origins=config.web.origins,
        clock=time.time,
        on_login=runtime.risk.record_login if runtime.risk else None,
        device_header=config.risk.device_id_header,
    )
    add_oidc_routes(app, routes)


async def _discover_at_start(provider: OidcProvider) -> None:
    """Ask the IdP once at start, so an unreachable one is in the log before anyone signs in;
    admitd serves anyway (sign-in answers 503, and discovery is retried by the next one)."""
    try:
        await provider.metadata()
    except ProviderUnavailable as exc:
        log.warning("identity provider %s unavailable at start: %s", provider.config.issuer, exc)


def _add_dev_sign_in(
    app: web.Application, runtime: Runtime, totp: TotpFactor, signer: ReturnToSigner
) -> None:
    """The IdP-less sign-in page, with `dev_mode: true` and no `oidc:` (a real IdP wins)."""
    config = runtime.config
    if config.oidc is not None:
        return
    routes = DevSignIn(
        store=runtime.store,
        totp=totp,
        signer=signer,
        sessions=config.sessions,
        clock=time.time,
        on_login=runtime.risk.record_login if runtime.risk else None,
        device_header=config.risk.device_id_header,
    )
    if add_dev_sign_in_routes(app, routes, dev_mode=config.dev_mode):
        log.warning("dev_mode: %s signs anyone in as any dev user, no password", DEV_SIGN_IN_PATH)


def _promote_sighting(runtime: Runtime) -> VerifiedHook | None:
    """A verified step-up vouches for the device it came from (device risk only)."""
    risk = runtime.risk
    if risk is None:
        return None

    async def promote(ref: SessionRef, device_id: str) -> None:
        try:
            await risk.promote_pending(ref.tag, ref.session_id, device_id)
        except AdmitdError as exc:
            # The verification stands; the device stays unknown, so the next Check may
            # step up again (fail closed), never the other way round.
            log.warning("device sighting not promoted after MFA (%s)", type(exc).__name__)

    return promote


async def _start_admin(runtime: Runtime) -> grpc.aio.Server | None:
    """admitd's own API (sessions, MFA enrolment, revocation), mTLS and admin principals only."""
    config, factors = runtime.config, runtime.factors
    if config.admin is None or factors is None:
        return None
    # The Risk API has its own callers: dual control must not count the login service.
    extra = [risk_handler(runtime.baselines, config.risk.approvers)] if runtime.baselines else []
    keys = _keys_handler(runtime)  # key custody: its own callers too (keys.custodians)
    if keys is not None:
        extra.append(keys)
    admin = await start_admin_server(
        config.admin,
        config.tls.trust_bundles,
        runtime.store,
        factors.totp,
        config.sessions,
        # The Check path's verifier and cache: one revocation reload applies to both.
        callers=runtime.certificates.verdict_for_pem,
        privileged_roles=config.mfa_rules.privileged_roles,
        extra_handlers=extra,
        on_login=runtime.risk.record_login if runtime.risk else None,
    )
    log.info("admin API (mTLS) on %s", config.admin.listen)
    return admin


def _custody_events(runtime: Runtime) -> AuditLogEvents | LogAuditEvents:
    audit = runtime.audit
    return AuditLogEvents(audit, instance=audit.config.instance) if audit else LogAuditEvents()


async def _check_kms_provider(runtime: Runtime) -> None:
    """With keys.custodians, start only with the approved kms: provider (recording it on
    the first start); ConfigError otherwise, or when Redis cannot say. custody.provider."""
    config = runtime.config
    if not config.keys.custodians or config.kms is None or runtime.redis is None:
        return  # config loading guarantees kms: and redis_url once custodians are set
    await check_running_provider(
        runtime.redis, config.kms, _custody_events(runtime), config_file=config.file
    )


def _keys_handler(runtime: Runtime) -> grpc.GenericRpcHandler | None:
    config, events = runtime.config, _custody_events(runtime)
    return keys_handler_from_parts(
        config.keys,
        config_file=config.file,
        redis_url=config.redis_url,
        client=runtime.redis,
        kms=runtime.sealer.provider if runtime.sealer is not None else None,
        record_patterns=config.kms.record_patterns if config.kms else (),
        sessions=runtime.store,
        audit=events,
    )


async def _poll_policies(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.config.policy_reload_seconds)
        await _reload_policies(runtime)


async def _reload_policies(runtime: Runtime, *, force: bool = False) -> None:
    # The load runs in a thread with a time limit (PolicyWatcher): Checks go on meanwhile.
    outcome = await runtime.policy_watcher.poll(runtime.engine.replace_policy, force=force)
    _record_reload(runtime, outcome)


def _reload_on_sighup(runtime: Runtime) -> None:
    reloads: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def reload() -> None:
        task = asyncio.create_task(_reload_policies(runtime, force=True))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload)


def _record_reload(runtime: Runtime, outcome: bool | None) -> None:
    if outcome is None:
        return
    label = "applied" if outcome else "refused"
    runtime.metrics.policy_reloads.labels(label).inc()
    runtime.metrics.security_events.labels("policy_reload", label).inc()
    runtime.append_audit(
        AuditEntry(
            time=time.time(),
            event_type=AuditEvent.POLICY_RELOADED,
            decision=label,
            reason=runtime.policy_watcher.last_error[:500],
            policy_version=runtime.policy.version,
        )
    )


async def _poll_revocation(runtime: Runtime) -> None:
    metrics = runtime.metrics
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
