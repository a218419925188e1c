"""Start the admin API (`admitd.v1.Sessions`) on its own port, mutual TLS required.

gRPC verifies the client chain against the trust bundle during the handshake
(`require_client_auth=True`), so a caller without an acceptable certificate
cannot even connect. Every call then passes `CallerCertificateCheck` (the Check
path's verifier: revocation, deny list, EKU, validity), and the guard matches the
caller's identity to `admin.principals` (`risk.approvers` for `admitd.v1.Risk`,
`keys.custodians` for `admitd.v1.Keys`: both passed in `extra_handlers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import grpc

from admitd.admin.caller import CallerCertificateCheck, PeerVerdict
from admitd.admin.config import AdminConfig
from admitd.admin.servicer import AdminApi, admin_handler
from admitd.admin.sessions import SessionAdmin
from admitd.admin.tls import server_certificate_validity
from admitd.core.mfa_rules import DEFAULT_PRIVILEGED_ROLES
from admitd.errors import ConfigError
from admitd.mfa.ports import TotpFactor
from admitd.sessions.store import LoginHook, SessionStore

__all__ = ["SessionLifetimes", "server_credentials", "start_admin_server"]

log = logging.getLogger(__name__)


class SessionLifetimes(Protocol):
    """What the admin API needs from `SessionsConfig`."""

    @property
    def idle_timeout(self) -> float: ...

    @property
    def absolute_timeout(self) -> float: ...


def server_credentials(
    config: AdminConfig, trust_bundles: Iterable[Path]
) -> grpc.ServerCredentials:
    try:
        roots = b"".join(path.read_bytes() for path in trust_bundles)
        pair = (config.server_key.read_bytes(), config.server_cert.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read admin TLS files: {exc}", key="admin") from None
    return grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=True)


async def start_admin_server(
    config: AdminConfig,
    trust_bundles: Path | Iterable[Path],
    store: SessionStore,
    totp: TotpFactor,
    sessions: SessionLifetimes,
    *,
    callers: PeerVerdict,
    privileged_roles: frozenset[str] = DEFAULT_PRIVILEGED_ROLES,
    clock: Callable[[], float] = time.time,
    extra_handlers: Iterable[grpc.GenericRpcHandler] = (),
    on_login: LoginHook | None = None,
) -> grpc.aio.Server:
    """Started and listening; stop it with `await server.stop(grace)`.

    `callers` verifies the caller's certificate on every call; pass the Check path's
    `ClientCertificates.verdict_for_pem`, so one revocation reload applies to both.
    `extra_handlers` serve further admin services (e.g. `admitd.v1.Risk`) on the same
    mTLS port, behind the same certificate check (each with its own principals).

    Raises ConfigError when the TLS files cannot be read or the port cannot be bound.
    """
    bundles = [trust_bundles] if isinstance(trust_bundles, Path) else list(trust_bundles)
    admin = SessionAdmin(
        store,
        totp,
        idle_timeout=sessions.idle_timeout,
        absolute_timeout=sessions.absolute_timeout,
        privileged_roles=privileged_roles,
        clock=clock,
        on_login=on_login,
    )
    server = grpc.aio.server(interceptors=[CallerCertificateCheck(callers, clock)])
    server.add_generic_rpc_handlers(
        (admin_handler(AdminApi(admin, clock), config.principals), *extra_handlers)
    )
    try:
        server.add_secure_port(config.listen, server_credentials(config, bundles))
    except RuntimeError as exc:  # grpc's "Failed to bind"
        raise ConfigError(f"cannot listen on {config.listen}: {exc}", key="admin.listen") from None
    await server.start()
    log.info(
        "admin API listening on %s (mTLS, %d allowed principals)",
        config.listen,
        len(config.principals),
    )
    _log_certificate_validity(config, clock())
    return server


def _log_certificate_validity(config: AdminConfig, now: float) -> None:
    # Logged, not fatal: an expired admin certificate must not take the Check path down
    # with it at a restart (`admitd check-config` refuses it).
    validity = server_certificate_validity(config.server_cert, datetime.fromtimestamp(now, UTC))
    if validity.error:
        log.error("admin.server_cert: %s; admin API clients cannot connect", validity.error)
    elif validity.warning:
        log.warning("admin.server_cert: %s; renew it", validity.warning)
