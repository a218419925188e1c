"""Render the edge with Envoy's HTTP ext_authz (`http_service`) to admitd's `http_listen`.

The same edge as admitd.devstack.envoy_config (TLS, path and host normalisation, XFCC
SANITIZE_SET), with the gRPC ext_authz filter and the admitd cluster swapped for their
HTTP forms. envoy/edge-http.yaml is this, rendered for the dev ports.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.httpauthz.wire import (
    CHECK_PATH_PREFIX,
    CLIENT_DENIAL_EXACT,
    CLIENT_OK_HEADERS,
    METADATA_HEADERS,
    NOT_SENT_TO_ADMITD,
    POLICED_PREFIX,
    SOURCE_ADDRESS_HEADER,
    TIMEOUT_HEADER,
    UPSTREAM_EXACT,
)

__all__ = [
    "EXAMPLE_HTTP_PORT",
    "http_authz_filter",
    "render_http_edge_config",
    "with_http_authz",
    "write_example",
]

_TYPE = "type.googleapis.com/envoy."
_EXT_AUTHZ = "envoy.filters.http.ext_authz"
_CLUSTER = "admitd"
_HEADER = (
    "# Envoy edge for admitd over HTTP ext_authz (http_service): terminates TLS, asks for\n"
    "# (but does not require) a client certificate, sets x-forwarded-client-cert from the\n"
    "# TLS peer (SANITIZE_SET: a client's own is dropped), and asks admitd's http_listen\n"
    "# before admitting any request. Why each setting: docs/http-authz.md.\n"
    "# Rendered by admitd.devstack.envoy_http_config; validate with\n"
    "#   envoy --mode validate -c envoy/edge-http.yaml\n"
)


def render_http_edge_config(settings: EdgeSettings, upstream_headers: tuple[str, ...] = ()) -> str:
    """The edge as YAML, asking admitd over HTTP on `authz_port` (or `authz_socket`).

    `upstream_headers`: the names your routes set in `upstream_headers` (besides
    x-admitd-*, cookie and authorization): Envoy passes only listed headers upstream.
    """
    bootstrap = yaml.safe_load(render_edge_config(settings))
    if settings.ext_authz:
        bootstrap = with_http_authz(bootstrap, settings, upstream_headers)
    return _HEADER + yaml.safe_dump(bootstrap, sort_keys=False)


def with_http_authz(
    bootstrap: dict[str, Any], settings: EdgeSettings, upstream_headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A copy of a rendered edge (`render_edge_config`, loaded) asking admitd over HTTP."""
    if settings.authz_tls is not None:
        raise ValueError(
            "http_listen is plaintext (loopback or a Unix socket only): there is no TLS"
            " form of the HTTP ext_authz listener; use the gRPC tls_listen"
        )
    result = copy.deepcopy(bootstrap)
    resources = result["static_resources"]
    manager = resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    # What admitd reads from XFCC: the leaf (Cert, as include_peer_certificate gives it
    # over gRPC; the chain is built from the trust bundle) and its URI SAN. Less to send
    # with every Check than the gRPC edge's subject, DNS and chain.
    manager["set_current_client_cert_details"] = {"cert": True, "uri": True}
    manager["http_filters"] = [
        http_authz_filter(settings, upstream_headers) if f["name"] == _EXT_AUTHZ else f
        for f in manager["http_filters"]
    ]
    resources["clusters"] = [
        _http_cluster(settings) if c["name"] == _CLUSTER else c for c in resources["clusters"]
    ]
    return result


def http_authz_filter(
    settings: EdgeSettings, upstream_headers: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The ext_authz filter with `http_service` (Envoy 1.40 field names)."""
    return {
        "name": _EXT_AUTHZ,
        "typed_config": {
            "@type": _TYPE + "extensions.filters.http.ext_authz.v3.ExtAuthz",
            "http_service": {
                # `uri` is required by HttpUri but unused: requests go to `cluster`.
                "server_uri": {
                    "uri": f"http://{_CLUSTER}",
                    "cluster": _CLUSTER,
                    "timeout": settings.authz_timeout,
                },
                "path_prefix": CHECK_PATH_PREFIX,
                "authorization_request": {"headers_to_add": _request_headers(settings)},
                "authorization_response": _response_matchers(upstream_headers),
            },
            # Every request header reaches admitd, as over gRPC: routes match on any
            # header and admitd strips client-sent x-admitd-* only where it sees them.
            "allowed_headers": {"patterns": [{"safe_regex": {"regex": ".*"}}]},
            "disallowed_headers": _exact(NOT_SENT_TO_ADMITD),
            # Fail closed: if admitd cannot answer (or answers 5xx), the request is not
            # admitted, and the client gets 503 (retryable) rather than Envoy's 403.
            "failure_mode_allow": False,
            "status_on_error": {"code": "ServiceUnavailable"},
        },
    }


def _request_headers(settings: EdgeSettings) -> list[dict[str, str]]:
    # Overwrite any client header of these names in the authorization request; admitd
    # also has Envoy remove a client's copy before the upstream sees it (x-admitd-*).
    return [
        {"key": SOURCE_ADDRESS_HEADER, "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
        {"key": TIMEOUT_HEADER, "value": str(_milliseconds(settings.authz_timeout))},
    ]


def _response_matchers(upstream_headers: tuple[str, ...]) -> dict[str, Any]:
    upstream = [
        {"prefix": POLICED_PREFIX},
        *_exact((*UPSTREAM_EXACT, *upstream_headers))["patterns"],
    ]
    return {
        "allowed_upstream_headers": {"patterns": upstream},
        "allowed_client_headers": {
            "patterns": [{"prefix": POLICED_PREFIX}, *_exact(CLIENT_DENIAL_EXACT)["patterns"]]
        },
        "allowed_client_headers_on_success": _exact(CLIENT_OK_HEADERS),
        "dynamic_metadata_from_headers": _exact(METADATA_HEADERS),
    }


def _exact(names: tuple[str, ...]) -> dict[str, list[dict[str, str]]]:
    return {"patterns": [{"exact": name} for name in dict.fromkeys(names)]}


def _http_cluster(s: EdgeSettings) -> dict[str, Any]:
    """HTTP/1.1 with keep-alive: Envoy never pipelines, so it opens one connection per
    Check in flight and reuses them."""
    if s.authz_socket is not None:
        address: dict[str, Any] = {"pipe": {"path": str(s.authz_socket)}}
    else:
        address = {"socket_address": {"address": s.host, "port_value": s.authz_port}}
    return {
        "name": _CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": _CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _milliseconds(duration: str) -> int:
    """Envoy's "0.5s" as 500."""
    if not duration.endswith("s"):
        raise ValueError(f"expected a duration in seconds such as 0.5s, got {duration!r}")
    return round(float(duration[:-1]) * 1000)


EXAMPLE_HTTP_PORT = 9003  # admitd's http_listen in the example (9001 gRPC, 9002 web pages)


def write_example(path: Path = Path("envoy/edge-http.yaml")) -> None:
    """Regenerate the committed example (the dev ports, paths under /etc/admitd/pki)."""
    from admitd.devstack.write_example import EXAMPLE

    settings = replace(EXAMPLE, authz_port=EXAMPLE_HTTP_PORT)
    path.write_text(render_http_edge_config(settings))


if __name__ == "__main__":
    write_example()
