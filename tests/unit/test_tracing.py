"""Tracing: one span per Check, child of the caller's trace, with decisions but no secrets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from admitd.envelope import Sealer
from admitd.envelope.context import Context, RecordType
from admitd.errors import ConfigError
from admitd.extauthz import service as service_module
from admitd.extauthz.service import AuthorizationService
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.tracing import Tracing, configure_tracing
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for
from tests.unit.test_check_service import golden_request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A Tracing of this test's own, exporting to memory, in place of the process one."""
    exporter = InMemorySpanExporter()
    own = Tracing()
    assert configure_tracing({"OTEL_TRACES_EXPORTER": "console"}, into=own, exporter=exporter)
    for module in (service_module, *_span_users()):
        monkeypatch.setattr(module, "tracing", own)
    yield exporter
    own.shutdown()


def _span_users() -> list[Any]:
    from admitd.envelope import sealer
    from admitd.sessions import redis_store

    return [sealer, redis_store]


def grpc_context(metadata: tuple[tuple[str, str], ...] = ()) -> Mock:
    context = Mock()
    context.invocation_metadata.return_value = metadata
    context.time_remaining.return_value = None
    return context


def service(pki: PkiSet, policy_dir: Path) -> AuthorizationService:
    engine, _ = engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl])
    return AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())


async def test_off_by_default_and_without_an_exporter() -> None:
    assert not configure_tracing({}, into=Tracing())
    assert not configure_tracing({"OTEL_TRACES_EXPORTER": "none"}, into=Tracing())
    assert not configure_tracing(
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, into=Tracing()
    )
    off = Tracing()
    with off.check_span({"traceparent": PARENT}) as span:
        assert span is None  # nothing is created, nothing is recorded


def test_an_unknown_exporter_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_EXPORTER.*unknown exporter 'jaeger'"):
        configure_tracing({"OTEL_TRACES_EXPORTER": "jaeger"}, into=Tracing())


async def test_a_check_continues_the_trace_from_grpc_metadata(
    traced: InMemorySpanExporter, pki: PkiSet, policy_dir: Path
) -> None:
    request = golden_request(url_pem(pki.alice), authorization="Bearer secret-token")
    await service(pki, policy_dir).Check(request, grpc_context((("traceparent", PARENT),)))
    (span,) = traced.get_finished_spans()
    assert span.name == "admitd.Check"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert span.attributes == {
        "admitd.route": "api",
        "admitd.reason": "allowed",
        "admitd.allowed": True,
        "http.response.status_code": 200,
    }
    # No header value, token or certificate anywhere in what is exported.
    exported = span.to_json()
    assert "secret-token" not in exported and "BEGIN" not in exported


async def test_without_metadata_the_request_headers_carry_the_parent(
    traced: InMemorySpanExporter, pki: PkiSet, policy_dir: Path
) -> None:
    b3 = {"x-b3-traceid": TRACE_ID, "x-b3-spanid": "00f067aa0ba902b7", "x-b3-sampled": "1"}
    await service(pki, policy_dir).Check(golden_request(url_pem(pki.bob), **b3), grpc_context())
    (span,) = traced.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == TRACE_ID


async def test_a_denial_and_a_new_trace(
    traced: InMemorySpanExporter, pki: PkiSet, policy_dir: Path
) -> None:
    await service(pki, policy_dir).Check(golden_request("", "/admin/x"), grpc_context())
    (span,) = traced.get_finished_spans()
    assert span.parent is None  # nobody sent a trace: admitd starts one
    assert span.attributes is not None
    assert (span.attributes["admitd.allowed"], span.attributes["admitd.reason"]) == (
        False,
        "missing",
    )
    assert span.attributes["http.response.status_code"] == 495


async def test_kms_calls_are_child_spans(traced: InMemorySpanExporter) -> None:
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    context = Context(RecordType.AUDIT_ENTRY, "r1", "org")
    own = _span_users()[0].tracing
    with own.check_span({"traceparent": PARENT}):
        envelope = await sealer.seal(b"x", context)
        assert await sealer.open(envelope, context) == b"x"
    names = [s.name for s in traced.get_finished_spans()]
    assert names == ["kms wrap", "kms unwrap", "admitd.Check"]
    assert len({s.context.trace_id for s in traced.get_finished_spans()}) == 1
