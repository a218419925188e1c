"""`admitd dev`: dev PKI (first run), admitd, a real Envoy and an echo upstream on loopback."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from admitd.config import load_config
from admitd.devstack.banner import banner_text
from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, wait_for_port
from admitd.devstack.watch import EXIT_CHILD_DIED, report_dead_child, watch_children
from admitd.pki import DEV_FILES, write_dev_pki

__all__ = ["DevOidc", "DevPorts", "run_dev_stack", "start_dev_processes", "write_dev_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DevPorts:
    https: int = 8443
    authz: int = 9001
    metrics: int = 9464
    upstream: int = 8080
    envoy_admin: int = 9901
    web: int = 9002
    admin: int = 9443


@dataclass(frozen=True, slots=True)
class DevOidc:
    """`admitd dev --oidc-issuer`: sign in at this IdP instead of the dev sign-in page."""

    issuer: str
    client_id: str
    client_secret_file: Path
    organisation_claim: str | None = None
    roles_claim: str | None = None

    def section(self) -> dict[str, object]:
        """The `oidc:` section (admitd.oidc.config); redirect URIs default to web.origins[0]."""
        section: dict[str, object] = {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "client_secret_file": str(self.client_secret_file.resolve()),
        }
        if self.organisation_claim:
            section["organisation_claim"] = self.organisation_claim
        if self.roles_claim:
            section["roles_claim"] = self.roles_claim
        return section


def write_dev_config(
    home: Path,
    policies: Path,
    ports: DevPorts,
    redis_url: str | None,
    oidc: DevOidc | None = None,
) -> tuple[Path, Path]:
    """Write PKI (if absent), admitd.yaml and envoy.yaml under `home`; return both config paths.

    Without `oidc`, browsers sign in on the dev sign-in page (dev_mode, no `oidc:`)."""
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
        # The hash-chained audit log needs Redis; dev_mode seals with deterministic dev keys.
        config["audit"] = {"spool_file": str((home / "audit-spool.jsonl").resolve())}
    config["web"] = {
        "listen": f"127.0.0.1:{ports.web}",
        "signing_key_file": _signing_key(home).name,
        "rp_id": "localhost",
        "origins": [f"https://localhost:{ports.https}"],
    }
    if oidc is not None:
        config["oidc"] = oidc.section()
    config["admin"] = {
        "listen": f"127.0.0.1:{ports.admin}",
        "server_cert": f"pki/{DEV_FILES['server_cert']}",
        "server_key": f"pki/{DEV_FILES['server_key']}",
        "principals": ["spiffe://admitd.dev/admin/ops"],
    }
    # The dev PKI has one admin: it may request overrides; approving needs a second one.
    config["risk"] = {"approvers": ["spiffe://admitd.dev/admin/ops"]}
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
                web_port=ports.web,
                server_cert=(pki / DEV_FILES["server_cert"]).resolve(),
                server_key=(pki / DEV_FILES["server_key"]).resolve(),
                trust_bundle=(pki / DEV_FILES["trust"]).resolve(),
            )
        )
    )
    return admitd_yaml, envoy_yaml


def _signing_key(home: Path) -> Path:
    """The step-up pages' signing key: 32 random bytes, owner-only, kept across runs."""
    path = home / "web-signing.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path


def run_dev_stack(
    home: Path,
    policies: Path,
    ports: DevPorts,
    redis_url: str | None,
    oidc: DevOidc | None = None,
) -> int:
    """Run until Ctrl-C/SIGTERM (0) or until a child dies (it is named; the rest stop; 1)."""
    admitd_yaml, envoy_yaml = write_dev_config(home, policies, ports, redis_url, oidc)
    # Fail here, with the loader's file/key/fix, not in admitd's log after a timeout.
    load_config(admitd_yaml)
    if not redis_url:
        log.warning(
            "no --redis-url: session state uses the embedded in-memory store (single process only)"
        )
    # Before any child starts, so that a SIGTERM at any point still stops them all.
    signal.signal(signal.SIGTERM, _interrupt)
    with ProcessGroup(home / "logs") as group:
        try:
            start_dev_processes(group, admitd_yaml, envoy_yaml, ports)
        except (RuntimeError, TimeoutError) as exc:
            return _failed_to_start(group, exc)
        except KeyboardInterrupt:
            return 0
        print(banner_text(home, ports, oidc), flush=True)
        return watch_children(group)


def _failed_to_start(group: ProcessGroup, exc: Exception) -> int:
    """A child died or never listened: name it, with its log, rather than a traceback."""
    dead = group.first_exited()
    if dead is not None:
        report_dead_child(group, *dead)
    print(f"admitd dev: could not start the stack: {exc}", file=sys.stderr)
    return EXIT_CHILD_DIED


def start_dev_processes(
    group: ProcessGroup, admitd_yaml: Path, envoy_yaml: Path, ports: DevPorts
) -> None:
    """The echo upstream, admitd and Envoy from the written configs; returns once all listen."""
    upstream = group.start(
        "upstream",
        [sys.executable, "-m", "admitd.devstack.echo", "--port", str(ports.upstream)],
    )
    wait_for_port(ports.upstream, process=upstream)
    admitd = group.start(
        "admitd", [sys.executable, "-m", "admitd", "serve", "--config", str(admitd_yaml)]
    )
    wait_for_port(ports.authz, process=admitd)
    wait_for_port(ports.web, process=admitd)
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
