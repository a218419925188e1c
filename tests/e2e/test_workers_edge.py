"""Through the real Envoy with the shipped admitd cluster settings, Checks reach both workers.

Envoy sends a worker thread's Checks over one HTTP/2 connection, and each connection
lands on one admitd worker: only because envoy/edge.yaml caps the streams per connection
does a load of concurrent requests open the several connections that reach both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from admitd.devstack.envoy_config import SPREAD_MAX_STREAMS, SPREAD_RECONNECT_SECONDS
from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e

SHIPPED = Path(__file__).parents[2] / "envoy" / "edge.yaml"
OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
BURSTS = 4  # each new connection is a coin toss between the workers; a few bursts suffice


def shipped_authz_options() -> dict[str, Any]:
    doc = yaml.safe_load(SHIPPED.read_text())
    (cluster,) = [c for c in doc["static_resources"]["clusters"] if c["name"] == "admitd"]
    options: dict[str, Any] = cluster["typed_extension_protocol_options"]
    return options


def with_shipped_authz_options(rendered: dict[str, Any]) -> None:
    for cluster in rendered["static_resources"]["clusters"]:
        if cluster["name"] == "admitd":
            cluster["typed_extension_protocol_options"] = shipped_authz_options()


def get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError as exc:
        return str(exc)


def samples(text: str, name: str) -> dict[str, float]:
    """`name`'s samples by their label text, e.g. {'worker="0"': 12.0}."""
    found = re.findall(rf"^{name}(?:{{(.*?)}})? (\S+)$", text, flags=re.MULTILINE)
    return {labels: float(value) for labels, value in found}


@pytest.fixture(scope="module")
def workers_edge(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    if shutil.which("h2load") is None:
        pytest.skip("h2load not installed (Debian nghttp2-client)")
    from tests.conftest import POLICY

    work = tmp_path_factory.mktemp("workers-edge")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(
        pki,
        work / "policies.yaml",
        work,
        extra_config={"workers": 2, "grace_seconds": 1},
        envoy_config=with_shipped_authz_options,
    )
    try:
        deadline = time.monotonic() + 60
        while '"2 of 2 workers ready"' not in get(stack.metrics_port, "/readyz"):
            assert time.monotonic() < deadline, stack.group.log_tail("admitd")
            time.sleep(0.2)
        yield stack
    finally:
        stack.group.stop_all()


def test_the_shipped_edge_caps_streams_and_renews_connections_to_admitd() -> None:
    options = shipped_authz_options()[OPTIONS]
    http2 = options["explicit_http_config"]["http2_protocol_options"]
    assert http2 == {"max_concurrent_streams": SPREAD_MAX_STREAMS}
    duration = options["common_http_protocol_options"]["max_connection_duration"]
    assert duration == f"{SPREAD_RECONNECT_SECONDS}s"
    assert "docs/workers.md" in SHIPPED.read_text().split("admin:")[0]  # the comment why


def test_checks_through_envoy_reach_both_workers(workers_edge: EdgeStack) -> None:
    sent = 0
    for _ in range(BURSTS):
        sent += h2load(workers_edge.https_port, requests=500, clients=64)
        per_worker = samples(
            get(workers_edge.metrics_port, "/metrics"), "admitd_worker_checks_total"
        )
        if len(per_worker) == 2 and all(count > 0 for count in per_worker.values()):
            break
    assert set(per_worker) == {'worker="0"', 'worker="1"'}
    assert all(count > 0 for count in per_worker.values()), per_worker
    # Envoy opened several connections to admitd (one would have reached one worker).
    stats = json.loads(
        get(
            admin_port(workers_edge), "/stats?format=json&filter=^cluster.admitd.upstream_cx_total$"
        )
    )
    (connections,) = [s["value"] for s in stats["stats"]]
    assert connections > 1
    # /metrics merges both workers' counts: every request was one Check decision.
    merged = samples(get(workers_edge.metrics_port, "/metrics"), "admitd_decisions_total")
    assert sum(merged.values()) == sent == sum(per_worker.values())


def h2load(port: int, *, requests: int, clients: int) -> int:
    """Concurrent HTTPS requests without a client certificate (each is Checked and
    answered 495 by admitd); returns how many were done."""
    result = subprocess.run(
        [
            "h2load",
            "--h1",
            "-n",
            str(requests),
            "-c",
            str(clients),
            f"https://127.0.0.1:{port}/api/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", result.stdout)
    denied = re.search(r"status codes: \d+ 2xx, \d+ 3xx, (\d+) 4xx", result.stdout)
    assert done is not None and denied is not None, result.stdout
    assert denied.group(1) == done.group(1), result.stdout  # all answered by admitd: 495
    return int(done.group(1))


def admin_port(stack: EdgeStack) -> int:
    rendered = yaml.safe_load((stack.group.log_dir.parent / "envoy.yaml").read_text())
    return int(rendered["admin"]["address"]["socket_address"]["port_value"])
