"""The `tls_listen:` config section: the Check service over TLS, optionally mutual.

Envoy's ext_authz gRPC stream carries every request's headers, cookies and client
certificate. On loopback or a pod-local socket, plaintext is fine; anywhere else
(a separate Deployment, another host) it must be TLS, and mutual TLS with a CA that
issues only Envoy's certificate keeps anyone else from asking admitd questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from admitd.certs.keypair import key_pair_problem
from admitd.errors import ConfigError
from admitd.fields import Fields

__all__ = [
    "SECTION_KEYS",
    "TlsListenConfig",
    "check_server_credentials",
    "tls_listen_config_from_fields",
]

SECTION_KEYS = {"address", "server_cert", "server_key", "client_ca"}


@dataclass(frozen=True, slots=True)
class TlsListenConfig:
    """`client_ca` set: callers must present a certificate that chains to it (mTLS)."""

    address: str
    server_cert: Path
    server_key: Path
    client_ca: Path | None = None


def tls_listen_config_from_fields(fields: Fields) -> TlsListenConfig | None:
    """None when the section is absent. Relative paths are relative to the config file."""
    if not fields.raw:
        return None
    base = Path(fields.doc.file).resolve().parent
    cert, key = _file(fields, "server_cert", base), _file(fields, "server_key", base)
    problem = key_pair_problem(cert, key)
    if problem is not None:
        raise fields.error("server_key", problem, "give the key that belongs to server_cert")
    ca = _file(fields, "client_ca", base) if fields.has("client_ca") else None
    return TlsListenConfig(fields.address("address", example="0.0.0.0:9443"), cert, key, ca)


def check_server_credentials(config: TlsListenConfig) -> grpc.ServerCredentials:
    """TLS credentials for the Check listener; client certificates required with a CA."""
    try:
        pair = (config.server_key.read_bytes(), config.server_cert.read_bytes())
        roots = config.client_ca.read_bytes() if config.client_ca is not None else None
    except OSError as exc:
        raise ConfigError(f"cannot read TLS files: {exc}", key="tls_listen") from None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=roots is not None
    )


def _file(fields: Fields, key: str, base: Path) -> Path:
    path = base / fields.text(key)
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. ENAMETOOLONG: is_file() answers False only for "not there"
        raise fields.error(key, f"cannot use {path}: {exc.strerror}", "a PEM file") from None
    if not is_file:
        raise fields.error(key, f"{path} does not exist", "a PEM file")
    return path
