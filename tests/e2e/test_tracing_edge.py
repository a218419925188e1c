"""Envoy starts the trace (its OpenTelemetry tracer), admitd's Check span continues it.

The upstream sees the `traceparent` Envoy's router injected; admitd, with the console
exporter, writes its span to its log: both carry the same trace id, and admitd's span is
a child of Envoy's ext_authz call.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from admitd.devstack.processes import free_port
from tests.conftest import POLICY
from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet

pytestmark = pytest.mark.e2e

_OTEL = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"


def with_envoy_tracing(collector_port: int) -> Any:
    """Envoy traces every request; its spans go to a collector port nobody listens on
    (Envoy only logs that), what matters is the context it propagates."""

    def edit(config: dict[str, Any]) -> None:
        manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        manager["typed_config"]["tracing"] = {
            "random_sampling": {"value": 100},
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": _OTEL,
                    "grpc_service": {"envoy_grpc": {"cluster_name": "otel"}, "timeout": "0.25s"},
                    "service_name": "edge",
                },
            },
        }
        options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        config["static_resources"]["clusters"].append(
            {
                "name": "otel",
                "type": "STATIC",
                "connect_timeout": "0.25s",
                "load_assignment": {
                    "cluster_name": "otel",
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {
                                            "socket_address": {
                                                "address": "127.0.0.1",
                                                "port_value": collector_port,
                                            }
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                },
                "typed_extension_protocol_options": {
                    options: {
                        "@type": "type.googleapis.com/" + options,
                        "explicit_http_config": {"http2_protocol_options": {}},
                    }
                },
            }
        )

    return edit


@pytest.fixture(scope="module")
def traced_edge(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("traced-edge")
    (work / "policies.yaml").write_text(POLICY)
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    stack = start_edge(
        pki,
        work / "policies.yaml",
        work,
        admitd_env=env,
        envoy_config=with_envoy_tracing(free_port()),
    )
    yield stack
    stack.group.stop_all()


def admitd_spans(log: Path) -> list[dict[str, Any]]:
    """The console exporter's JSON objects (one per span) among admitd's log lines."""
    text = log.read_text(errors="replace")
    spans = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r'^\{\s*$\n\s*"name"', text, re.MULTILINE):
        span, _ = decoder.raw_decode(text, match.start())
        spans.append(span)
    return spans


def test_admitds_span_continues_envoys_trace(
    traced_edge: EdgeStack, certs: dict[str, tuple[Path, Path]]
) -> None:
    reply = traced_edge.get("/api/items", cert=certs["alice"])
    assert reply.status == 200
    traceparent = reply.json()["headers"]["traceparent"]  # what the upstream got
    trace_id = traceparent.split("-")[1]
    log = traced_edge.group.log_dir / "admitd.log"
    deadline = time.monotonic() + 10
    found: list[dict[str, Any]] = []
    while not found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = [s for s in admitd_spans(log) if s["context"]["trace_id"] == f"0x{trace_id}"]
    assert found, f"no admitd span with trace id {trace_id} in {log}"
    (span,) = found
    assert span["name"] == "admitd.Check" and span["kind"] == "SpanKind.SERVER"
    assert span["parent_id"] is not None  # Envoy's span for the ext_authz call
    assert span["attributes"]["admitd.route"] == "api"
    assert span["attributes"]["admitd.allowed"] is True


def test_a_denied_request_is_traced_too_without_secrets(
    traced_edge: EdgeStack, certs: dict[str, tuple[Path, Path]]
) -> None:
    reply = traced_edge.get(
        "/admin/users", cert=certs["bob"], headers={"authorization": "Bearer do-not-log-me"}
    )
    assert reply.status == 495
    log = traced_edge.group.log_dir / "admitd.log"
    deadline = time.monotonic() + 10
    denied: list[dict[str, Any]] = []
    while not denied and time.monotonic() < deadline:
        time.sleep(0.2)
        denied = [s for s in admitd_spans(log) if s["attributes"].get("admitd.allowed") is False]
    assert denied and denied[-1]["attributes"]["admitd.reason"] == "identity_not_allowed"
    assert "do-not-log-me" not in log.read_text()
