"""Assemble the running parts from a Config; everything that can fail does so at start-up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import redis.asyncio as redis
from prometheus_client import CollectorRegistry

from admitd.audit import AuditEntry, AuditLog, AuditLogEvents, signing_key_from_file
from admitd.audit.hooks import Append, AuditedSessionStore
from admitd.audit.receipt import Receipt
from admitd.certs.client import ClientCertificates
from admitd.certs.expiring import ExpiringClients
from admitd.certs.mesh import MeshVerifier
from admitd.certs.revocation import RevocationError, RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.config import Config
from admitd.core.context import RequestContext
from admitd.core.decision import Decision
from admitd.core.risk import RiskLevel
from admitd.core.route import PolicySet, StepUpAt
from admitd.engine import Engine, IdpStepUpUrl, SignInUrl, StepUpUrl
from admitd.envelope import Sealer
from admitd.errors import ConfigError
from admitd.expiry import ExpiryCollector
from admitd.factors import Factors, factors_from_config, sealer_from_config
from admitd.identity import IdentitySource
from admitd.identity_chain import ChainedIdentity
from admitd.jwt.metrics import IdpMetrics
from admitd.jwt.source import JwtIdentity
from admitd.kms.audit import AuditEvents, LogAuditEvents
from admitd.metrics import Metrics
from admitd.oidc.handlers import sign_in_location, step_up_sign_in_location
from admitd.policy.loader import load_policies
from admitd.policy.watch import PolicyWatcher
from admitd.risk.baseline import BaselineStore
from admitd.risk.gatherer import RiskGatherer
from admitd.risk.geo import GeoLocator
from admitd.risk.metrics import MeteredAudit, RiskMetrics
from admitd.risk.reputation import ReputationList
from admitd.risk.state import RiskStateStore
from admitd.sessions.identity import SessionIdentity
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.store import SessionStore
from admitd.web.dev_sign_in import dev_sign_in_location
from admitd.web.return_to import ReturnToSigner, step_up_location
from admitd.web.step_up_reason import StepUpReason

__all__ = ["Runtime", "runtime_from_config", "session_store_from_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    engine: Engine
    revocation: RevocationSource
    store: SessionStore  # the audited store (admin API, step-up pages); the engine reads directly
    factors: Factors | None
    policy_watcher: PolicyWatcher
    registry: CollectorRegistry
    metrics: Metrics
    audit: AuditLog | None
    baselines: BaselineStore | None
    reputation: ReputationList | None
    certificates: ClientCertificates  # the Check path's verifier, shared by the admin API
    identity: SessionIdentity  # the engine's identity source
    risk: RiskGatherer | None
    jwt: JwtIdentity | None = None  # JWT bearer tokens (the engine asks it via ChainedIdentity)
    idp_metrics: IdpMetrics | None = None  # JWKS fetches, OIDC discovery and callbacks
    redis: redis.Redis | None = None  # the shared client, when `redis_url` is set (readiness)
    sealer: Sealer | None = None  # envelope encryption, when `kms:` is set (readiness)

    @property
    def policy(self) -> PolicySet:
        return self.engine.policy

    async def start(self) -> None:
        """Start what runs in the background: the audit writer, the session cache feed."""
        if self.audit is not None:
            await self.audit.start()
        if isinstance(self.identity.store, RedisSessionStore):
            self.identity.store.start()
        if self.jwt is not None:
            await self.jwt.start()  # an unreachable JWKS is logged; admitd starts anyway

    async def flush_last_seen(self) -> None:
        await self.identity.flush_last_seen()

    async def close(self) -> None:
        """Write what is pending (last-seen times, audit entries, a checkpoint), then close."""
        await self.identity.flush_last_seen()
        if self.risk is not None:
            await self.risk.close()
        if self.audit is not None:
            await self.audit.close()  # flushes queued entries and writes a last checkpoint
        await self.store.close()
        if self.jwt is not None:
            await self.jwt.close()

    def reload_revocation(self) -> bool:
        """Pick up changed CRL/deny-list files; True when the cached verdicts were dropped."""
        if not self.revocation.reload_if_changed():
            return False
        self.certificates.invalidate()
        return True

    def append_audit(self, entry: AuditEntry) -> None:
        """Queue `entry`, naming this replica when the caller did not (policy reloads)."""
        if self.audit is not None:
            if not entry.instance:
                entry = replace(entry, instance=self.audit.config.instance)
            self.audit.append(entry)

    def audit_decision(self, ctx: RequestContext, decision: Decision) -> Receipt | None:
        """Queue what the audit of a decision needs (denials, step-ups, high risk); the
        writer task builds, coalesces and seals the entry (the receipt: `AuditLog`)."""
        if self.audit is None:
            return None
        return self.audit.record_decision(
            decision,
            source_ip=ctx.source_address,
            device_id=ctx.header(self.config.risk.device_id_header),
            now=time.time(),
        )


def runtime_from_config(config: Config) -> Runtime:
    # Before the first load: no change is missed.
    watcher = PolicyWatcher(config.policies, load=_policy_loader(config))
    registry = CollectorRegistry()
    metrics = Metrics(registry, privileged_roles=config.mfa_rules.privileged_roles)
    client = client_from_url(config.redis_url) if config.redis_url else None
    sealer = sealer_from_config(config)
    audit = _audit_log(config, client, sealer, registry)
    append: Append = audit.append if audit else _discard
    events: AuditEvents = (
        AuditLogEvents(audit, instance=audit.config.instance) if audit else LogAuditEvents()
    )
    store = session_store_from_config(config, client)
    audited: SessionStore = (
        AuditedSessionStore(store, append, audit.config.instance) if audit else store
    )
    factors = factors_from_config(
        config,
        audited,
        client,
        sealer,
        append if audit else None,
        instance=audit.config.instance if audit else "",
    )
    risk_metrics = RiskMetrics(registry, security_events=metrics.security_events)
    baselines, reputation, risk = _risk(
        config,
        client,
        sealer=sealer,
        store=store,
        events=MeteredAudit(events, risk_metrics),
        metrics=risk_metrics,
    )
    expiring = ExpiringClients()
    certificates = _certificates(config, revocation := _revocation(config), expiring)
    _expiry_metrics(config, registry, revocation, sealer, expiring)
    identity = SessionIdentity(store, config.sessions.cookie_name)
    # The session store records revoke-user: that user's tokens issued before it are refused.
    idp_metrics = IdpMetrics(registry)
    jwt = (
        JwtIdentity(config.jwt, revocations=store, metrics=idp_metrics)
        if config.jwt is not None
        else None
    )
    source: IdentitySource = ChainedIdentity(identity, jwt) if jwt is not None else identity
    engine = Engine(
        _policy_loader(config)(config.policies),
        certificates,
        store=store,
        identity=source,
        sessions=config.sessions,
        rules=config.mfa_rules,
        step_up_url=_step_up_url(factors.signer if factors else None),
        sign_in_url=_sign_in_url(config, factors.signer if factors else None),
        idp_step_up_url=_idp_step_up_url(config, factors.signer if factors else None),
        default_step_up=config.oidc.step_up if config.oidc is not None else StepUpAt.ADMITD,
        risk=risk,
    )
    if audit is not None:  # which denials may be coalesced depends on the live policy
        audit.use_policy(lambda: engine.policy, config.mfa_rules.privileged_roles)
    return Runtime(
        config,
        engine,
        revocation,
        audited,
        factors,
        watcher,
        registry,
        metrics,
        audit,
        baselines,
        reputation,
        certificates,
        identity,
        risk,
        jwt,
        idp_metrics=idp_metrics,
        redis=client,
        sealer=sealer,
    )


def _discard(entry: AuditEntry) -> None:
    return None


def _revocation(config: Config) -> RevocationSource:
    trust = trust_store_from_files(
        list(config.tls.trust_bundles), config_file=config.file, key="tls.trust_bundle"
    )
    revocation = RevocationSource(config.tls.crl_files, config.tls.deny_list, trust)
    try:
        revocation.load()
    except (RevocationError, OSError) as exc:
        raise ConfigError(
            str(exc),
            file=config.file,
            key="tls.crl_files / tls.deny_list",
            fix="fix or remove the named file",
        ) from None
    return revocation


def _certificates(
    config: Config, revocation: RevocationSource, expiring: ExpiringClients
) -> ClientCertificates:
    verifier = CertificateVerifier(
        revocation.issuers, lambda: revocation.data, max_chain_depth=config.tls.max_chain_length
    )
    mesh = MeshVerifier(config.mesh, lambda: revocation.data) if config.mesh else None
    return ClientCertificates(
        verifier.verify,
        config.trusted_proxies,
        cache_size=config.tls.verify_cache_size,
        max_chain_length=config.tls.max_chain_length,
        mesh=mesh,
        expiring=expiring,
    )


def _expiry_metrics(
    config: Config,
    registry: CollectorRegistry,
    revocation: RevocationSource,
    sealer: Sealer | None,
    expiring: ExpiringClients,
) -> None:
    servers = []
    if config.admin is not None:
        servers.append(("admin", config.admin.server_cert))
    if config.tls_listen is not None:
        servers.append(("check_tls", config.tls_listen.server_cert))
    registry.register(
        ExpiryCollector(
            revocation.issuers,
            lambda: revocation.data,
            server_certificates=servers,
            kms=sealer.provider if sealer is not None else None,
            clients=expiring,
        )
    )


def session_store_from_config(config: Config, client: redis.Redis | None) -> SessionStore:
    if client is None:
        log.warning(
            "no redis_url: sessions live in this process only (single replica, lost on restart)"
        )
        return MemorySessionStore()
    return RedisSessionStore(client, cache_ttl=config.sessions.cache_ttl)


def _audit_log(
    config: Config, client: redis.Redis | None, sealer: Sealer | None, registry: CollectorRegistry
) -> AuditLog | None:
    if config.audit is None:
        log.warning("no `audit:` section: denials are in the decision log only, not hash-chained")
        return None
    if client is None or sealer is None:
        raise ConfigError(
            "the audit log stores sealed entries in Redis",
            file=config.file,
            key="audit",
            fix="set redis_url and configure kms:, or remove audit:",
        )
    key_file = config.audit.signing_key_file
    signing_key = signing_key_from_file(key_file) if key_file is not None else None
    return AuditLog(client, sealer, config.audit, registry=registry, signing_key=signing_key)


def _risk(
    config: Config,
    client: redis.Redis | None,
    *,
    sealer: Sealer | None,
    store: SessionStore,
    events: AuditEvents,
    metrics: RiskMetrics,
) -> tuple[BaselineStore | None, ReputationList | None, RiskGatherer | None]:
    """Device risk needs Redis (history, baselines) and a KMS (telemetry is sealed)."""
    if client is None or sealer is None or not isinstance(store, RedisSessionStore):
        log.warning("device risk is off: it needs redis_url and kms: (telemetry is stored sealed)")
        return None, None, None
    cfg = config.risk
    state = RiskStateStore(
        client,
        sealer,
        retention_seconds=cfg.telemetry_retention_seconds,
        max_known_devices=cfg.max_known_devices,
    )
    baselines = BaselineStore(
        client,
        state,
        events,
        default_threshold=cfg.baseline_threshold,
        override_ttl_seconds=cfg.override_ttl_seconds,
        cache_seconds=cfg.baseline_cache_seconds,
    )
    reputation = ReputationList(cfg.reputation_files)
    gatherer = RiskGatherer(
        cfg,
        config.mfa_rules,
        reputation=reputation,
        geo=GeoLocator(cfg.mmdb_file, trusted_headers=cfg.trusted_geo_headers),
        baselines=baselines,
        state=state,
        metrics=metrics,
        invalidate_user=store.invalidate_user,
    )
    return baselines, reputation, gatherer


def _policy_loader(config: Config) -> Callable[[Path], PolicySet]:
    """Policies as this config can serve them: at start-up and on every reload."""

    def load(path: Path) -> PolicySet:
        policy = load_policies(path)
        if config.oidc is None:
            _refuse_idp_step_up(policy, config)
        return policy

    return load


def _refuse_idp_step_up(policy: PolicySet, config: Config) -> None:
    for route in policy.routes:
        for variant in (route, *route.per_organisation.values()):
            if variant.step_up is StepUpAt.IDP:
                raise ConfigError(
                    f"route {route.name!r} steps up at the IdP, but no IdP is configured",
                    file=route.source,
                    key=f"{route.name}.step_up",
                    fix=f"configure `oidc:` in {config.file}, or write `step_up: admitd`",
                )


def _idp_step_up_url(config: Config, signer: ReturnToSigner | None) -> IdpStepUpUrl | None:
    if config.oidc is None or signer is None:
        return None
    return lambda ctx, now, max_age: step_up_sign_in_location(
        signer, ctx.host, ctx.path, now, max_age
    )


def _step_up_url(signer: ReturnToSigner | None) -> StepUpUrl | None:
    if signer is None:
        return None  # the engine's plain step-up path

    def location(ctx: RequestContext, now: float, decision: Decision) -> str:
        # Signed with the authority Envoy forwards as Host, which the step-up app checks;
        # the page says why it asks (max age, risk signals) only from this signed reason.
        reason = _step_up_reason(decision)
        return step_up_location(signer, ctx.host, ctx.path, now, reason)

    return location


def _step_up_reason(decision: Decision) -> StepUpReason | None:
    if not decision.step_up_max_age:
        return None
    risk = decision.risk
    # Signals only when they counted: a low-risk sighting's signals did not raise anything.
    unusual = risk is not None and risk.level.above(RiskLevel.LOW)
    return StepUpReason(decision.step_up_max_age, risk.signals if unusual and risk else ())


def _sign_in_url(config: Config, signer: ReturnToSigner | None) -> SignInUrl | None:
    if signer is None:
        return None  # no web app: a browser gets the 401 page like an API client
    if config.oidc is not None:
        return lambda ctx, now: sign_in_location(signer, ctx.host, ctx.path, now)
    if config.dev_mode:  # `admitd dev` without an IdP: the dev sign-in page (server.py)
        return lambda ctx, now: dev_sign_in_location(signer, ctx.host, ctx.path, now)
    return None  # no IdP to send a browser to: it gets the 401 page like an API client
