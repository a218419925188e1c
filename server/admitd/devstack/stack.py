"""`admitd dev`: dev PKI (first run), admitd, a real Envoy and an echo upstream on loopback."""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, wait_for_port
from admitd.pki import DEV_FILES, write_dev_pki

__all__ = ["DevPorts", "run_dev_stack", "write_dev_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DevPorts:
    https: int = 8443
    authz: int = 9001
    metrics: int = 9464
    upstream: int = 8080
    envoy_admin: int = 9901


def write_dev_config(
    home: Path, policies: Path, ports: DevPorts, redis_url: str | None
) -> tuple[Path, Path]:
    """Write PKI (if absent), admitd.yaml and envoy.yaml under `home`; return both config paths."""
    pki = home / "pki"
    if not (pki / DEV_FILES["trust"]).exists():
        write_dev_pki(pki)
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{ports.authz}",
        "metrics_listen": f"127.0.0.1:{ports.metrics}",
        "policies": str(policies.resolve()),
        "dev_mode": True,
        "tls": {
            "trust_bundle": f"pki/{DEV_FILES['trust']}",
            "crl_files": [f"pki/{DEV_FILES['crl']}"],
            "deny_list": f"pki/{DEV_FILES['deny_list']}",
        },
        "trusted_proxies": [
            {
                "name": "dev-edge-proxy",
                "principals": ["spiffe://admitd.dev/proxy/edge"],
                "header": "xfcc",
            }
        ],
    }
    if redis_url:
        config["redis_url"] = redis_url
    admitd_yaml = home / "admitd.yaml"
    admitd_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    envoy_yaml = home / "envoy.yaml"
    envoy_yaml.write_text(
        render_edge_config(
            EdgeSettings(
                listen_port=ports.https,
                admin_port=ports.envoy_admin,
                authz_port=ports.authz,
                upstream_port=ports.upstream,
                server_cert=(pki / DEV_FILES["server_cert"]).resolve(),
                server_key=(pki / DEV_FILES["server_key"]).resolve(),
                trust_bundle=(pki / DEV_FILES["trust"]).resolve(),
            )
        )
    )
    return admitd_yaml, envoy_yaml


def run_dev_stack(home: Path, policies: Path, ports: DevPorts, redis_url: str | None) -> int:
    admitd_yaml, envoy_yaml = write_dev_config(home, policies, ports, redis_url)
    if not redis_url:
        log.warning(
            "no --redis-url: session state uses the embedded in-memory store (single process only)"
        )
    with ProcessGroup(home / "logs") as group:
        upstream = group.start(
            "upstream",
            [sys.executable, "-m", "admitd.devstack.echo", "--port", str(ports.upstream)],
        )
        wait_for_port(ports.upstream, process=upstream)
        admitd = group.start(
            "admitd", [sys.executable, "-m", "admitd", "serve", "--config", str(admitd_yaml)]
        )
        wait_for_port(ports.authz, process=admitd)
        envoy = group.start(
            "envoy",
            [
                envoy_binary(),
                "-c",
                str(envoy_yaml),
                "--log-level",
                "warn",
                "--base-id",
                str(ports.https),
            ],
        )
        wait_for_port(ports.https, process=envoy)
        print(_banner(home / "pki", ports), flush=True)
        _wait_for_interrupt(group)
    return 0


def _wait_for_interrupt(group: ProcessGroup) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping admitd, Envoy and the upstream ...", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _banner(pki: Path, ports: DevPorts) -> str:
    url = f"https://localhost:{ports.https}"
    ca = f"--cacert {pki / 'root-ca.pem'}"
    alice = f"--cert {pki / 'alice.pem'} --key {pki / 'alice.key'}"
    mallory = f"--cert {pki / 'mallory.pem'} --key {pki / 'mallory.key'}"
    return f"""
admitd dev stack is up (Ctrl-C stops everything). Logs: {pki.parent / "logs"}
  Envoy (TLS, mTLS optional)  {url}
  admitd Check (gRPC)         127.0.0.1:{ports.authz}
  metrics                     http://127.0.0.1:{ports.metrics}/metrics

Try:
  # 200 from the echo upstream, with x-admitd-principal: spiffe://admitd.dev/user/alice
  curl -s {ca} {alice} {url}/api/hello

  # 495 {{"error":{{"code":"client_certificate_required",...}}}}: no client certificate
  curl -s -i {ca} {url}/api/hello

  # 495 identity_not_allowed: mallory is a valid client, but not on /admin/
  curl -s -i {ca} {mallory} {url}/admin/users

  # 200 without a certificate: /healthz is a public route
  curl -s {ca} {url}/healthz
"""
