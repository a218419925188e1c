"""`admitd dev`: dev PKI (first run), admitd, a real Envoy and an echo upstream on loopback."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from admitd.config import load_config
from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, wait_for_port
from admitd.pki import DEV_FILES, write_dev_pki
from admitd.web.dev_sign_in import DEV_SIGN_IN_PATH
from admitd.web.dev_users import DEV_USERS

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
    admitd_yaml, envoy_yaml = write_dev_config(home, policies, ports, redis_url, oidc)
    # Fail here, with the loader's file/key/fix, not in admitd's log after a timeout.
    load_config(admitd_yaml)
    if not redis_url:
        log.warning(
            "no --redis-url: session state uses the embedded in-memory store (single process only)"
        )
    with ProcessGroup(home / "logs") as group:
        start_dev_processes(group, admitd_yaml, envoy_yaml, ports)
        print(_banner(home / "pki", ports, oidc), flush=True)
        _wait_for_interrupt(group)
    return 0


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


def _wait_for_interrupt(group: ProcessGroup) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping admitd, Envoy and the upstream ...", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _banner(pki: Path, ports: DevPorts, oidc: DevOidc | None = None) -> str:
    url = f"https://localhost:{ports.https}"
    ca = f"--cacert {pki / 'root-ca.pem'}"
    alice = f"--cert {pki / 'alice.pem'} --key {pki / 'alice.key'}"
    mallory = f"--cert {pki / 'mallory.pem'} --key {pki / 'mallory.key'}"
    admin_tls = (
        f"--address 127.0.0.1:{ports.admin} --cert {pki / 'ops.pem'}"
        f" --key {pki / 'ops.key'} --ca {pki / 'root-ca.pem'}"
    )
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

Sessions and MFA step-up (/finance/ needs a finance/admin role with MFA under 15 minutes):
  # create a session through the admin API (prints the token once)
  admitd sessions create {admin_tls} --user ana --org acme --role viewer --device laptop \\
      > {pki.parent}/ana.token
  curl -s {ca} {alice} -H "authorization: Bearer $(cat {pki.parent}/ana.token)" {url}/finance/ledger
  # a privileged user must enrol a factor first (then step up at {url}/.admitd/step-up):
  admitd sessions totp-enrol {admin_tls} --user fin --org acme
{_browser_banner(pki, url, oidc)}"""


def _browser_banner(pki: Path, url: str, oidc: DevOidc | None) -> str:
    """How to walk the browser flow: the routes need a client certificate in the browser."""
    p12 = pki / "alice.p12"
    lines = [
        "",
        "In a browser (import alice's certificate first; any export password):",
        f"  openssl pkcs12 -export -in {pki / 'alice.pem'} -inkey {pki / 'alice.key'} -out {p12}",
        f"  then open {url}/finance/ledger",
    ]
    if oidc is not None:
        lines.append(f"  you sign in at {oidc.issuer} (client {oidc.client_id}); register")
        lines.append(f"  the redirect URI {url}/.admitd/oidc/callback there")
        return "\n".join(lines) + "\n"
    lines.append(f"  no session: you land on the dev sign-in page, {url}{DEV_SIGN_IN_PATH}:")
    lines.append("  pick a user (tick 'Also enrol an authenticator app' for a QR code)")
    lines.extend(
        f"    {user.user_id:<4} {user.organisation:<7} {user.role_list:<8} {user.note}"
        for user in DEV_USERS
    )
    return "\n".join(lines) + "\n"
