"""The HTTP ext_authz edge (admitd.devstack.envoy_http_config): current, valid to Envoy 1.40."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from admitd.devstack.envoy_config import AuthzTls, render_edge_config
from admitd.devstack.envoy_http_config import (
    EXAMPLE_HTTP_PORT,
    render_http_edge_config,
    with_http_authz,
)
from admitd.devstack.processes import envoy_binary
from admitd.devstack.write_example import EXAMPLE
from admitd.pki import write_dev_pki

COMMITTED = Path(__file__).parents[2] / "envoy" / "edge-http.yaml"


def validate(text: str, directory: Path) -> None:
    """`envoy --mode validate` on `text` with the example's PKI paths made real."""
    write_dev_pki(directory)
    path = directory / "edge-http.yaml"
    path.write_text(text.replace("/etc/admitd/pki", str(directory)))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


def authz_filter(bootstrap: dict[str, Any]) -> dict[str, Any]:
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    (found,) = [
        f for f in manager["typed_config"]["http_filters"] if f["name"].endswith("ext_authz")
    ]
    config: dict[str, Any] = found["typed_config"]
    return config


def test_the_committed_example_is_current_and_valid(tmp_path: Path) -> None:
    expected = render_http_edge_config(replace(EXAMPLE, authz_port=EXAMPLE_HTTP_PORT))
    assert COMMITTED.read_text() == expected, (
        "regenerate with: python -m admitd.devstack.envoy_http_config"
    )
    validate(expected, tmp_path)


def test_over_a_unix_socket_with_a_routes_own_header(tmp_path: Path) -> None:
    settings = replace(EXAMPLE, authz_socket=tmp_path / "authz.sock")
    text = render_http_edge_config(settings, upstream_headers=("x-tenant",))
    bootstrap = yaml.safe_load(text)
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "admitd"]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"] == {"pipe": {"path": str(tmp_path / "authz.sock")}}
    response = authz_filter(bootstrap)["http_service"]["authorization_response"]
    assert {"exact": "x-tenant"} in response["allowed_upstream_headers"]["patterns"]
    validate(text, tmp_path)


def test_the_edge_sanitizes_xfcc_and_fails_closed() -> None:
    bootstrap = yaml.safe_load(render_http_edge_config(EXAMPLE))
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert manager["typed_config"]["forward_client_cert_details"] == "SANITIZE_SET"
    config = authz_filter(bootstrap)
    assert config["failure_mode_allow"] is False
    assert config["status_on_error"] == {"code": "ServiceUnavailable"}
    assert "grpc_service" not in config and config["http_service"]["path_prefix"] == "/check"
    # The gRPC cluster's HTTP/2 options are gone: Envoy speaks HTTP/1.1 to http_listen.
    (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "admitd"]
    assert "typed_extension_protocol_options" not in cluster


def test_the_ceiling_is_the_grpc_edge_without_ext_authz() -> None:
    ceiling = replace(EXAMPLE, ext_authz=False)
    assert yaml.safe_load(render_http_edge_config(ceiling)) == yaml.safe_load(
        render_edge_config(ceiling)
    )


def test_there_is_no_tls_form_of_http_listen() -> None:
    tls = AuthzTls(Path("c.pem"), Path("c.key"), Path("ca.pem"))
    bootstrap = yaml.safe_load(render_edge_config(EXAMPLE))
    with pytest.raises(ValueError, match="no TLS form"):
        with_http_authz(bootstrap, replace(EXAMPLE, authz_tls=tls))
