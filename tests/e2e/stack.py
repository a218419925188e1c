"""A real edge for tests: echo upstream, admitd and Envoy on free loopback ports."""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from admitd.devstack.envoy_config import AuthzTls, EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, free_port, wait_for_port
from tests.pki_fixtures import PkiSet


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class EdgeStack:
    group: ProcessGroup
    https_port: int
    authz_port: int
    metrics_port: int
    pki: PkiSet
    deny_list: Path

    def get(
        self,
        path: str,
        *,
        cert: tuple[Path, Path] | None = None,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> Response:
        context = ssl.create_default_context(cafile=str(self.pki.directory / "root.pem"))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        connection = http.client.HTTPSConnection(
            "localhost", self.https_port, context=context, timeout=10
        )
        try:
            connection.request(method, path, headers=headers or {})
            reply = connection.getresponse()
            return Response(
                reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
            )
        finally:
            connection.close()

    def stop_admitd(self) -> None:
        self.group.stop("admitd")


def start_edge(
    pki: PkiSet,
    policies: Path,
    work: Path,
    *,
    proxies: list[dict[str, object]] | None = None,
    redis_url: str | None = None,
    extra_config: dict[str, object] | None = None,
    authz_tls: bool = False,
    https_port: int | None = None,
    web_port: int | None = None,
    admitd_env: dict[str, str] | None = None,
    envoy_config: Callable[[dict[str, Any]], None] | None = None,
) -> EdgeStack:
    """`authz_tls`: Envoy asks admitd over mutual TLS (`tls_listen`), with no plaintext port.
    `web_port`: Envoy routes /.admitd/ there (admitd's own pages, `web:` in `extra_config`)."""
    ports = {name: free_port() for name in ("https", "authz", "metrics", "upstream", "admin")}
    if https_port is not None:
        ports["https"] = https_port
    deny_list = work / "denylist.txt"
    deny_list.write_text("")
    config = {
        "listen": f"127.0.0.1:{ports['authz']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": str(policies),
        "tls": {
            "trust_bundle": str(pki.trust_bundle),
            "crl_files": [str(pki.crl)],
            "deny_list": str(deny_list),
            "revocation_poll_seconds": 0.2,
        },
        "trusted_proxies": proxies or [],
        "policy_reload_seconds": 0.2,
    }
    if redis_url:
        config["redis_url"] = redis_url
    tls = _authz_tls(pki, config, ports["authz"]) if authz_tls else None
    config.update(extra_config or {})
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    rendered = yaml.safe_load(
        render_edge_config(
            EdgeSettings(
                listen_port=ports["https"],
                admin_port=ports["admin"],
                authz_port=ports["authz"],
                upstream_port=ports["upstream"],
                server_cert=pki.directory / "server.pem",
                server_key=pki.directory / "server.key",
                trust_bundle=pki.trust_bundle,
                authz_tls=tls,
                web_port=web_port,
            )
        )
    )
    if envoy_config is not None:
        envoy_config(rendered)  # the test's own changes (tracing, say)
    (work / "envoy.yaml").write_text(yaml.safe_dump(rendered))
    group = ProcessGroup(work / "logs")
    try:
        upstream = group.start(
            "upstream",
            [sys.executable, "-m", "admitd.devstack.echo", "--port", str(ports["upstream"])],
        )
        admitd = group.start(
            "admitd",
            [sys.executable, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")],
            env=admitd_env,
        )
        envoy = group.start("envoy", envoy_command(work / "envoy.yaml", ports["admin"]))
        wait_for_port(ports["upstream"], process=upstream)
        wait_for_port(ports["authz"], process=admitd)
        wait_for_port(ports["https"], process=envoy)
    except Exception:
        group.stop_all()
        raise
    return EdgeStack(group, ports["https"], ports["authz"], ports["metrics"], pki, deny_list)


def envoy_command(config: Path, base_id: int) -> list[str]:
    """A test Envoy: one worker, its own shared-memory id (tests run several), quiet."""
    return [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        "1",
        "--base-id",
        str(base_id),
        "--log-level",
        "warn",
    ]


def _authz_tls(pki: PkiSet, config: dict[str, object], port: int) -> AuthzTls:
    """admitd serves Check only over mTLS; Envoy presents the proxy certificate."""
    cert, key = pki.write_leaf("envoy-authz-client", pki.proxy, pki.client_ca)
    config["listen"] = ""
    config["tls_listen"] = {
        "address": f"127.0.0.1:{port}",
        "server_cert": str(pki.directory / "server.pem"),
        "server_key": str(pki.directory / "server.key"),
        "client_ca": str(pki.trust_bundle),
    }
    return AuthzTls(cert, key, pki.directory / "root.pem")
