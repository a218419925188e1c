"""The Envoy edge of the system under test: admitd's rendered edge config, with the admitd
cluster widened to every replica (health-checked, outliers ejected) when there are several."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from tests.pki_fixtures import PkiSet

__all__ = ["CHECK_SERVICE", "wait_replicas_healthy", "write_envoy_config"]

CHECK_SERVICE = "envoy.service.auth.v3.Authorization"  # admitd's gRPC health service name


def write_envoy_config(
    path: Path, pki: PkiSet, ports: dict[str, int], authz_ports: Sequence[int]
) -> None:
    """`ports`: https, admin, upstream; `authz_ports`: where Envoy sends Checks (a replica
    each, or the proxy in front of one)."""
    rendered = render_edge_config(
        EdgeSettings(
            listen_port=ports["https"],
            admin_port=ports["admin"],
            authz_port=authz_ports[0],
            upstream_port=ports["upstream"],
            server_cert=pki.directory / "server.pem",
            server_key=pki.directory / "server.key",
            trust_bundle=pki.trust_bundle,
        )
    )
    if len(authz_ports) > 1:
        config = yaml.safe_load(rendered)
        _spread_over_replicas(config, authz_ports)
        rendered = yaml.safe_dump(config, sort_keys=False)
    path.write_text(rendered)


def _spread_over_replicas(config: dict[str, Any], ports: Sequence[int]) -> None:
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "admitd")
    template = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    host = template["endpoint"]["address"]["socket_address"]["address"]
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for port in ports
    ]
    # A replica whose port refuses connections is ejected at once (one local-origin
    # failure); one that stops answering gRPC health is out of rotation after two checks.
    # Two, and a 1 s timeout: on a busy host a live replica may answer a check late, and
    # with the other one down that would leave no healthy replica at all.
    cluster["health_checks"] = [
        {
            "timeout": "1s",
            "interval": "0.5s",
            "no_traffic_interval": "0.5s",  # the default, 60 s, holds a replica out long
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            "grpc_health_check": {"service_name": CHECK_SERVICE},
        }
    ]
    # Never "panic" (Envoy's default: below 50 % healthy, balance over every host, the
    # dead one included): with no healthy replica, a Check fails and Envoy answers 503.
    cluster["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
    cluster["outlier_detection"] = {
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": 1,
        "interval": "0.5s",
        "base_ejection_time": "5s",
        "max_ejection_percent": 50,
    }


def wait_replicas_healthy(admin_port: int, replicas: int, timeout: float = 30.0) -> None:
    """Until Envoy's active health check has passed on every admitd endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=5) as r:
            lines = r.read().decode().splitlines()
        flags = [
            line for line in lines if line.startswith("admitd::") and "::health_flags::" in line
        ]
        if len(flags) == replicas and all(line.endswith("::healthy") for line in flags):
            return
        time.sleep(0.1)
    raise TimeoutError(f"Envoy never saw all {replicas} admitd replicas healthy")
