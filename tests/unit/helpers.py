"""Builders shared by unit tests: a request context and a wired engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from admitd.certs.client import ClientCertificates
from admitd.certs.expiring import ExpiringClients
from admitd.certs.forwarding import TrustedProxy
from admitd.certs.mesh import MeshSettings, MeshVerifier
from admitd.certs.revocation import RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier
from admitd.core.context import NO_CALLER, Caller, RequestContext
from admitd.engine import Engine
from admitd.policy.loader import load_policies
from admitd.sessions.config import SessionsConfig
from admitd.sessions.store import SessionStore


def request(
    path: str = "/api/items",
    *,
    method: str = "GET",
    host: str = "api.test:8443",
    cert: str = "",
    headers: Mapping[str, str] | None = None,
    source: str = "203.0.113.7",
    proto: str = "https",
    principal: str = "",
    caller: Caller = NO_CALLER,
) -> RequestContext:
    all_headers = {"x-forwarded-proto": proto, **(headers or {})}
    return RequestContext(
        method=method,
        scheme="https",
        host=host,
        path=path,
        headers=MappingProxyType(all_headers),
        source_address=source,
        peer_certificate=cert,
        envoy_principal=principal,
        caller=caller,
    )


def engine_for(
    trust_bundle: Path,
    policies: Path,
    *,
    proxies: Sequence[TrustedProxy] = (),
    crl_files: Sequence[Path] = (),
    deny_list: Path | None = None,
    clock: float | None = None,
    store: SessionStore | None = None,
    sessions: SessionsConfig | None = None,
    mesh: MeshSettings | None = None,
    expiring: ExpiringClients | None = None,
    **engine_options: Any,
) -> tuple[Engine, RevocationSource]:
    trust = trust_store_from_files([trust_bundle], config_file="test", key="tls.trust_bundle")
    revocation = RevocationSource(crl_files, deny_list, trust)
    revocation.load()
    verifier = CertificateVerifier(trust, lambda: revocation.data, max_chain_depth=8)
    mesh_verifier = MeshVerifier(mesh, lambda: revocation.data) if mesh else None
    certs = ClientCertificates(
        verifier.verify,
        proxies,
        cache_size=100,
        max_chain_length=8,
        mesh=mesh_verifier,
        expiring=expiring,
    )
    engine = Engine(
        load_policies(policies), certs, store=store, sessions=sessions, **engine_options
    )
    if clock is not None:
        engine._clock = lambda: clock
    return engine, revocation
