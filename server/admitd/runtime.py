"""Assemble the running parts from a Config; everything that can fail does so at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.certs.client import ClientCertificates
from admitd.certs.revocation import RevocationError, RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.config import Config
from admitd.engine import Engine
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies

__all__ = ["Runtime", "runtime_from_config"]


@dataclass(frozen=True, slots=True)
class Runtime:
    config: Config
    engine: Engine
    revocation: RevocationSource

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
    engine = Engine(load_policies(config.policies), certificates)
    return Runtime(config, engine, revocation)
