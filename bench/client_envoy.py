"""Envoy configs of the benchmark's own: the client (plain HTTP in, mTLS out) and the upstream.

wrk and h2load cannot present a client certificate, so a client Envoy does: it forwards
to the edge over mTLS with one dev user's certificate and adds the headers that user's
client would send (a bearer token, a device ID and a user agent for device risk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["BENCH_USER_AGENT", "render_client_config", "render_upstream_config"]

HOST = "127.0.0.1"
_TYPE = "type.googleapis.com/envoy."
# A browser's user agent, so `missing_user_agent` is not raised (docs/risk.md).
BENCH_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def render_client_config(
    listen_port: int,
    edge_port: int,
    pki: Path,
    *,
    user: str = "alice",
    headers: dict[str, str] | None = None,
) -> str:
    """A plain-HTTP listener that forwards to the edge over mTLS as `user` (a dev PKI
    client), overwriting `headers` on every request."""
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": "edge"}}
    if headers:
        route["request_headers_to_add"] = [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in headers.items()
        ]
    return _static_envoy(
        _plain_listener("client", listen_port, route), [_client_edge_cluster(edge_port, pki, user)]
    )


def render_upstream_config(listen_port: int) -> str:
    """An upstream that costs (almost) nothing: Envoy answering 200 itself."""
    body = {"inline_string": '{"ok":true}'}
    route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": body}}
    return _static_envoy(_plain_listener("upstream", listen_port, route), [])


def _static_envoy(listener: dict[str, Any], clusters: list[dict[str, Any]]) -> str:
    resources = {"listeners": [listener], "clusters": clusters}
    return yaml.safe_dump({"static_resources": resources}, sort_keys=False)


def _plain_listener(name: str, port: int, route: dict[str, Any]) -> dict[str, Any]:
    hcm = "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": _TYPE + "extensions.filters.http.router.v3.Router"},
    }
    manager = {
        "@type": _TYPE + hcm,
        "stat_prefix": name,
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}]},
        "http_filters": [router],
    }
    return {
        "name": name,
        "address": _address(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": HOST, "port_value": port}}


def _client_edge_cluster(edge_port: int, pki: Path, user: str) -> dict[str, Any]:
    certificate = {
        "certificate_chain": {"filename": str(pki / f"{user}.pem")},
        "private_key": {"filename": str(pki / f"{user}.key")},
    }
    tls = {
        "@type": _TYPE + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": "localhost",
        "common_tls_context": {
            "tls_certificates": [certificate],
            "validation_context": {"trusted_ca": {"filename": str(pki / "root-ca.pem")}},
        },
    }
    endpoint = {"endpoint": {"address": _address(edge_port)}}
    return {
        "name": "edge",
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {"cluster_name": "edge", "endpoints": [{"lb_endpoints": [endpoint]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
    }
