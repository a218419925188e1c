"""Regenerate the committed `envoy/edge.yaml` example (paths under /etc/admitd/pki)."""

from __future__ import annotations

from pathlib import Path

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config

EXAMPLE = EdgeSettings(
    listen_port=8443,
    admin_port=9901,
    authz_port=9001,
    upstream_port=8080,
    web_port=9002,
    server_cert=Path("/etc/admitd/pki/server.pem"),
    server_key=Path("/etc/admitd/pki/server.key"),
    trust_bundle=Path("/etc/admitd/pki/trust-bundle.pem"),
    spread_over_workers=True,
)

if __name__ == "__main__":
    Path("envoy/edge.yaml").write_text(render_edge_config(EXAMPLE))
