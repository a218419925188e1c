"""`admitd dev`'s config, loaded with the real loader: the dev sign-in by default, `oidc:` on ask."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from admitd.commands import _dev_oidc
from admitd.config import load_config
from admitd.devstack.banner import banner_text
from admitd.devstack.envoy_config import AuthzTls, EdgeSettings, render_edge_config
from admitd.devstack.processes import envoy_binary
from admitd.devstack.stack import DevOidc, DevPorts, write_dev_config
from admitd.errors import ConfigError
from admitd.pki import DEV_FILES, write_dev_pki
from admitd.runtime import runtime_from_config
from admitd.server import _add_dev_sign_in
from admitd.web.dev_sign_in import DEV_SIGN_IN_PATH
from admitd.web.dev_users import DEV_USERS

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dev")  # one dev PKI for the module (written on first use)


def secret_file(home: Path, mode: int = 0o600) -> Path:
    path = home / "oidc-client.secret"
    path.write_text("dev-client-secret\n")
    path.chmod(mode)
    return path


def dev_routes(config_file: Path) -> set[str]:
    """The paths the web app gets, wired as `admitd serve` wires it (server._add_dev_sign_in)."""
    runtime = runtime_from_config(load_config(config_file))
    assert runtime.factors is not None and runtime.factors.signer is not None
    app = web.Application()
    _add_dev_sign_in(app, runtime, runtime.factors.totp, runtime.factors.signer)
    return {resource.canonical for resource in app.router.resources()}


def test_the_dev_config_has_the_dev_sign_in_and_no_idp(home: Path) -> None:
    admitd_yaml, _ = write_dev_config(home, POLICIES, DevPorts(), None)
    config = load_config(admitd_yaml)
    assert config.dev_mode and config.oidc is None and config.web is not None
    assert DEV_SIGN_IN_PATH in dev_routes(admitd_yaml)


def test_oidc_issuer_writes_an_oidc_section_the_loader_accepts(home: Path) -> None:
    oidc = DevOidc("https://idp.example", "admitd-dev", secret_file(home), organisation_claim="org")
    admitd_yaml, _ = write_dev_config(home, POLICIES, DevPorts(https=9443), None, oidc)
    config = load_config(admitd_yaml)
    assert config.oidc is not None
    assert (config.oidc.issuer, config.oidc.client_id) == ("https://idp.example", "admitd-dev")
    assert config.oidc.client_secret == "dev-client-secret"
    assert config.oidc.redirect_uri == "https://localhost:9443/.admitd/oidc/callback"
    assert config.oidc.claims.organisation_claim == "org"
    assert config.oidc.claims.roles_claim == "groups"  # the loader's default, not written
    assert DEV_SIGN_IN_PATH not in dev_routes(admitd_yaml)  # the real IdP replaces it


def test_a_secret_file_others_can_read_is_refused_with_the_fix(home: Path) -> None:
    oidc = DevOidc("https://idp.example", "admitd-dev", secret_file(home, 0o644))
    admitd_yaml, _ = write_dev_config(home, POLICIES, DevPorts(), None, oidc)
    with pytest.raises(ConfigError, match=r"oidc\.client_secret_file.*chmod 600"):
        load_config(admitd_yaml)


def _args(**given: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "oidc_issuer": None,
        "oidc_client_id": "admitd-dev",
        "oidc_client_secret_file": None,
        "oidc_organisation_claim": None,
        "oidc_roles_claim": None,
    }
    return argparse.Namespace(**{**defaults, **given})


def test_the_dev_command_needs_issuer_and_secret_together(tmp_path: Path) -> None:
    assert _dev_oidc(_args()) is None
    with pytest.raises(ConfigError, match="--oidc-client-secret-file"):
        _dev_oidc(_args(oidc_issuer="https://idp.example"))
    with pytest.raises(ConfigError, match="--oidc-issuer"):
        _dev_oidc(_args(oidc_client_secret_file=tmp_path / "s"))
    made = _dev_oidc(_args(oidc_issuer="https://idp.example", oidc_client_secret_file=Path("s")))
    assert made == DevOidc("https://idp.example", "admitd-dev", Path("s"))


def test_the_banner_names_the_sign_in_page_and_every_dev_user(home: Path) -> None:
    banner = banner_text(home, DevPorts())
    assert f"https://localhost:8443{DEV_SIGN_IN_PATH}" in banner
    for user in DEV_USERS:
        assert f"{user.user_id:<4} {user.organisation:<7} {user.role_list:<8}" in banner
    oidc = DevOidc("https://idp.example", "admitd-dev", Path("s"))
    with_idp = banner_text(home, DevPorts(), oidc)
    assert DEV_SIGN_IN_PATH not in with_idp and "https://idp.example" in with_idp
    assert "https://localhost:8443/.admitd/oidc/callback" in with_idp


def edge_over_socket(pki: Path, socket: Path, **given: Any) -> EdgeSettings:
    return EdgeSettings(
        listen_port=8443,
        admin_port=9901,
        authz_port=9001,
        upstream_port=8080,
        server_cert=pki / DEV_FILES["server_cert"],
        server_key=pki / DEV_FILES["server_key"],
        trust_bundle=pki / DEV_FILES["trust"],
        authz_socket=socket,
        **given,
    )


def rendered_clusters(settings: EdgeSettings) -> dict[str, Any]:
    config = yaml.safe_load(render_edge_config(settings))
    return {cluster["name"]: cluster for cluster in config["static_resources"]["clusters"]}


def endpoint_address(cluster: dict[str, Any]) -> dict[str, Any]:
    (endpoints,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = endpoints["lb_endpoints"]
    address: dict[str, Any] = endpoint["endpoint"]["address"]
    return address


def test_an_edge_with_authz_socket_asks_admitd_over_that_unix_socket(tmp_path: Path) -> None:
    socket = tmp_path / "check.sock"
    clusters = rendered_clusters(edge_over_socket(tmp_path, socket, authz_max_streams=4))
    admitd = clusters["admitd"]
    assert endpoint_address(admitd) == {"pipe": {"path": str(socket)}}
    options = admitd["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert options["explicit_http_config"] == {
        "http2_protocol_options": {"max_concurrent_streams": 4}
    }
    assert "transport_socket" not in admitd
    # Only Check moves to the socket: the upstream stays on loopback TCP.
    upstream = endpoint_address(clusters["upstream"])
    assert upstream == {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}


def test_authz_socket_with_authz_tls_is_refused(tmp_path: Path) -> None:
    tls = AuthzTls(tmp_path / "envoy.pem", tmp_path / "envoy.key", tmp_path / "ca.pem")
    with pytest.raises(ValueError, match="authz_socket and authz_tls"):
        edge_over_socket(tmp_path, tmp_path / "check.sock", authz_tls=tls)


@pytest.mark.e2e
def test_envoy_validates_an_edge_with_authz_socket(home: Path, tmp_path: Path) -> None:
    pki = home / "pki"
    if not (pki / DEV_FILES["trust"]).exists():
        write_dev_pki(pki)
    edge_yaml = tmp_path / "edge.yaml"
    edge_yaml.write_text(render_edge_config(edge_over_socket(pki, tmp_path / "check.sock")))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(edge_yaml)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
