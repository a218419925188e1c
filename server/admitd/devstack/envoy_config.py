"""Render Envoy configurations for the edge (mTLS termination + ext_authz) in front of admitd."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SPREAD_MAX_STREAMS",
    "SPREAD_RECONNECT_SECONDS",
    "AuthzTls",
    "EdgeSettings",
    "render_edge_config",
]

_TYPE = "type.googleapis.com/envoy."
_HCM = "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

# Spreading Checks over admitd's workers (docs/workers.md). Envoy multiplexes all the
# Checks of one of its worker threads on one HTTP/2 connection, and with workers sharing
# the port (SO_REUSEPORT) the kernel hands each connection to one admitd worker: capped
# at a few streams, Envoy opens a connection per few concurrent Checks, which the kernel
# spreads; renewed every minute, connections also reach a worker that restarted.
SPREAD_MAX_STREAMS = 4
SPREAD_RECONNECT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    listen_port: int
    admin_port: int
    authz_port: int
    upstream_port: int
    server_cert: Path
    server_key: Path
    trust_bundle: Path
    host: str = "127.0.0.1"
    authz_timeout: str = "0.5s"
    ext_authz: bool = True  # False renders the benchmark ceiling: the same edge, no ext_authz
    authz_max_streams: int = 0  # >0 caps streams per connection so Envoy opens more connections
    # Spread Checks over admitd workers: streams capped (authz_max_streams, else
    # SPREAD_MAX_STREAMS) and connections renewed every SPREAD_RECONNECT_SECONDS.
    spread_over_workers: bool = False
    web_port: int = 0  # admitd's step-up pages; 0 leaves out the /.admitd/ route
    authz_tls: AuthzTls | None = None  # mutual TLS to admitd's `tls_listen`
    # Check over this Unix socket (admitd's `listen: unix://PATH`) instead of authz_port
    authz_socket: Path | None = None

    def __post_init__(self) -> None:
        if self.authz_socket is not None and self.authz_tls is not None:
            raise ValueError(
                "authz_socket and authz_tls are exclusive: admitd's Unix socket is plaintext"
                " (its file mode guards it); TLS is for tls_listen over TCP"
            )


@dataclass(frozen=True, slots=True)
class AuthzTls:
    """Envoy's client certificate for admitd's Check listener, and the CA of admitd's."""

    cert_chain: Path
    private_key: Path
    server_ca: Path
    server_name: str = "localhost"


def render_edge_config(settings: EdgeSettings) -> str:
    """The edge listener as YAML; `envoy/edge.yaml` is this, rendered for `admitd dev`."""
    header = (
        "# Envoy edge for admitd: terminates TLS, asks for (but does not require) a client\n"
        "# certificate, and asks admitd over gRPC before admitting any request.\n"
        '# Rendered by `admitd dev`; see README "Envoy integration".\n'
        "# Paths and hosts are normalised as strictly as Envoy can (normalize_path,\n"
        "# merge_slashes, REJECT_REQUEST for %2F/%5C, strip_trailing_host_dot, no\n"
        "# underscore headers): why is in admitd/devstack/envoy_config.py.\n"
    )
    if settings.spread_over_workers:
        header += _SPREAD_NOTE
    return header + yaml.safe_dump(_bootstrap(settings), sort_keys=False)


_SPREAD_NOTE = (
    "# The admitd cluster caps HTTP/2 streams per connection and renews connections\n"
    "# every minute: Envoy sends all of a worker thread's Checks over one connection, and\n"
    "# admitd's workers share the Check port, so each connection lands on one admitd\n"
    "# worker. More, renewed connections spread Checks over them (docs/workers.md).\n"
)


def _bootstrap(s: EdgeSettings) -> dict[str, Any]:
    return {
        "admin": {"address": _address(s.host, s.admin_port)},
        "static_resources": {
            "listeners": [_listener(s)],
            "clusters": [
                _authz_cluster(s),
                _cluster("upstream", _address(s.host, s.upstream_port)),
                *([_cluster("admitd_web", _address(s.host, s.web_port))] if s.web_port else []),
            ],
        },
    }


def _listener(s: EdgeSettings) -> dict[str, Any]:
    return {
        "name": "edge_https",
        "address": _address(s.host, s.listen_port),
        "filter_chains": [{"transport_socket": _downstream_tls(s), "filters": [_http_manager(s)]}],
    }


def _downstream_tls(s: EdgeSettings) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TYPE + "extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            # admitd answers a missing or bad certificate with a 495 that says why,
            # so the handshake must not fail: ask for a certificate, accept any
            # chain, and let admitd verify it (Envoy still hands it over).
            "require_client_certificate": False,
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(s.server_cert)},
                        "private_key": {"filename": str(s.server_key)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(s.trust_bundle)},
                    "trust_chain_verification": "ACCEPT_UNTRUSTED",
                },
            },
        },
    }


def _http_manager(s: EdgeSettings) -> dict[str, Any]:
    filters = [_ext_authz_filter(s)] if s.ext_authz else []
    filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _TYPE + "extensions.filters.http.router.v3.Router"},
        }
    )
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": _TYPE + _HCM,
            "stat_prefix": "edge",
            # Edge proxy: trust no client-supplied x-forwarded-* and set x-forwarded-proto itself.
            "use_remote_address": True,
            # Normalise as strictly as Envoy can, so routes, admitd and the upstream see
            # one path: RFC 3986 §6 (dot segments, %-decoding of unreserved characters),
            # `//` merged, and %2F/%5C refused (an upstream that decodes them after
            # routing would resolve another path; admitd refuses them too). Envoy turns
            # `%2e%2e;` into `..;` and keeps it (a servlet container then resolves it
            # as `..`): admitd refuses that, and `;` where a route does not allow it.
            "normalize_path": True,
            "merge_slashes": True,
            "path_with_escaped_slashes_action": "REJECT_REQUEST",
            # `secure.example.com.` is the same name; without this, Envoy's virtual hosts
            # (and the upstream's) would not match it. admitd normalises hosts as well.
            "strip_trailing_host_dot": True,
            # CGI/WSGI upstreams read `x_admitd_principal` as `x-admitd-principal`; drop
            # such headers as nginx does, since admitd only polices the dashed names.
            "common_http_protocol_options": {"headers_with_underscores_action": "DROP_HEADER"},
            # Drop any client-sent XFCC and set one describing the real peer.
            "forward_client_cert_details": "SANITIZE_SET",
            "set_current_client_cert_details": {
                "subject": True,
                "uri": True,
                "dns": True,
                "cert": True,
                "chain": True,
            },
            "route_config": {
                "name": "edge",
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [
                            *_web_routes(s),
                            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
                        ],
                    }
                ],
            },
            "http_filters": filters,
        },
    }


def _web_routes(s: EdgeSettings) -> list[dict[str, Any]]:
    """admitd's own pages: reachable while MFA is stale, so ext_authz is off for them."""
    if not s.web_port:
        return []
    return [
        {
            "match": {"prefix": "/.admitd/"},
            "route": {"cluster": "admitd_web"},
            "typed_per_filter_config": {
                "envoy.filters.http.ext_authz": {
                    "@type": _TYPE + "extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                    "disabled": True,
                }
            },
        }
    ]


def _ext_authz_filter(s: EdgeSettings) -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": _TYPE + "extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": "admitd"}, "timeout": s.authz_timeout},
            # Fail closed: if admitd cannot answer, the request is not admitted,
            # and the client gets 503 (retryable) rather than Envoy's default 403.
            "failure_mode_allow": False,
            "status_on_error": {"code": "ServiceUnavailable"},
            "include_peer_certificate": True,
        },
    }


def _authz_cluster(s: EdgeSettings) -> dict[str, Any]:
    if s.authz_socket is not None:
        cluster = _cluster("admitd", {"pipe": {"path": str(s.authz_socket)}})
    else:
        cluster = _cluster("admitd", _address(s.host, s.authz_port))
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _authz_protocol(s)
    }
    if s.authz_tls is not None:
        cluster["transport_socket"] = _authz_tls(s.authz_tls)
    return cluster


def _authz_protocol(s: EdgeSettings) -> dict[str, Any]:
    """HTTP/2 to admitd; spread over its workers when asked (see SPREAD_MAX_STREAMS)."""
    options: dict[str, Any] = {"@type": _TYPE + "extensions.upstreams.http.v3.HttpProtocolOptions"}
    streams = s.authz_max_streams or (SPREAD_MAX_STREAMS if s.spread_over_workers else 0)
    if s.spread_over_workers:
        # Drained, not cut: in-flight Checks finish, new ones go to a new connection.
        renew = f"{SPREAD_RECONNECT_SECONDS}s"
        options["common_http_protocol_options"] = {"max_connection_duration": renew}
    http2 = {"max_concurrent_streams": streams} if streams else {}
    options["explicit_http_config"] = {"http2_protocol_options": http2}
    return options


def _authz_tls(tls: AuthzTls) -> dict[str, Any]:
    # Each Check carries every header, cookie and client certificate of a request:
    # off the host, it goes over mutual TLS, and admitd's server name is verified.
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _TYPE + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": tls.server_name,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(tls.cert_chain)},
                        "private_key": {"filename": str(tls.private_key)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(tls.server_ca)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": tls.server_name}}
                    ],
                },
            },
        },
    }


def _cluster(name: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}
