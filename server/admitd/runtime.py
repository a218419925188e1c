"""Assemble the running parts from a Config; everything that can fail does so at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as redis

from admitd.certs.client import ClientCertificates
from admitd.certs.revocation import RevocationError, RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.config import Config
from admitd.engine import Engine, StepUpUrl
from admitd.errors import ConfigError
from admitd.factors import Factors, factors_from_config
from admitd.policy.loader import load_policies
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.store import SessionStore
from admitd.web.return_to import STEP_UP_PATH, ReturnToSigner, step_up_location

__all__ = ["Runtime", "runtime_from_config", "session_store_from_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    engine: Engine
    revocation: RevocationSource
    store: SessionStore
    factors: Factors | None

    def reload_revocation(self) -> bool:
        """Pick up changed CRL/deny-list files; True when the cached verdicts were dropped."""
        if not self.revocation.reload_if_changed():
            return False
        self.engine.certificates.invalidate()
        return True


def runtime_from_config(config: Config) -> Runtime:
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
    verifier = CertificateVerifier(
        trust, lambda: revocation.data, max_chain_depth=config.tls.max_chain_length
    )
    certificates = ClientCertificates(
        verifier.verify,
        config.trusted_proxies,
        cache_size=config.tls.verify_cache_size,
        max_chain_length=config.tls.max_chain_length,
    )
    client = client_from_url(config.redis_url) if config.redis_url else None
    store = session_store_from_config(config, client)
    factors = factors_from_config(config, store, client)
    engine = Engine(
        load_policies(config.policies),
        certificates,
        store=store,
        sessions=config.sessions,
        step_up_url=_step_up_url(factors.signer if factors else None),
    )
    return Runtime(config, engine, revocation, store, factors)


def session_store_from_config(config: Config, client: redis.Redis | None) -> SessionStore:
    if client is None:
        log.warning(
            "no redis_url: sessions live in this process only (single replica, lost on restart)"
        )
        return MemorySessionStore()
    return RedisSessionStore(client, cache_ttl=config.sessions.cache_ttl)


def _step_up_url(signer: ReturnToSigner | None) -> StepUpUrl:
    if signer is None:
        return lambda ctx, now: STEP_UP_PATH
    # Signed with the authority Envoy forwards as Host, which the step-up app checks.
    return lambda ctx, now: step_up_location(signer, ctx.host, ctx.path, now)
