"""Optional OpenTelemetry tracing: one span per Check, continuing Envoy's trace.

Off unless the `otel` extra is installed and `OTEL_TRACES_EXPORTER` names an exporter
(`otlp`, `console`; `none` or unset: off). Everything else is OpenTelemetry's standard
environment: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_*`,
`OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_BSP_*`, `OTEL_PROPAGATORS` (default here: W3C
`traceparent` and both B3 forms), `OTEL_SDK_DISABLED`.

Off costs one attribute check per Check. Spans carry the route, reason, whether it was
allowed and the risk level: never a header value, token, cookie or certificate.
The parent context is read from the Check call's gRPC metadata (where Envoy's tracer
puts the ext_authz call's own span) and else from the request headers in the
CheckRequest (a client's or an edge's `traceparent`, `b3`, `x-b3-*`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from admitd.core.decision import Decision
from admitd.errors import ConfigError

__all__ = ["UNTRACED", "Tracing", "configure_tracing", "tracing"]

log = logging.getLogger(__name__)

_PARENT_HEADERS = ("traceparent", "b3", "x-b3-traceid")
UNTRACED: AbstractContextManager[None] = nullcontext()  # what a disabled span scope is


class Tracing:
    """The process's tracer; `enabled` is False (and every method nearly free) until
    `configure_tracing` succeeds."""

    def __init__(self) -> None:
        self.enabled = False
        self._tracer: Any = None
        self._propagator: Any = None
        self._provider: Any = None
        self._span_kind: Any = None

    def check_span(
        self, headers: Mapping[str, str], metadata: Sequence[tuple[str, str | bytes]] = ()
    ) -> AbstractContextManager[Any]:
        """The span of one Check, child of the caller's trace when it sent one."""
        if not self.enabled:
            return UNTRACED
        return self._check_span(headers, metadata)

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A child span of whatever span is current (a Redis lookup, a KMS call)."""
        if not self.enabled:
            return UNTRACED
        return self._tracer.start_as_current_span(name)  # type: ignore[no-any-return]

    @staticmethod
    def record_decision(span: Any, decision: Decision) -> None:
        """What the span says about the decision: never a header value or credential."""
        if span is None:
            return
        span.set_attribute("admitd.route", decision.route)
        span.set_attribute("admitd.reason", decision.reason.value)
        span.set_attribute("admitd.allowed", decision.allowed)
        span.set_attribute("http.response.status_code", decision.status)
        if decision.risk is not None:
            span.set_attribute("admitd.risk_level", decision.risk.level.value)

    @contextmanager
    def _check_span(
        self, headers: Mapping[str, str], metadata: Sequence[tuple[str, str | bytes]]
    ) -> Iterator[Any]:
        carrier = _carrier(metadata) or {k: headers[k] for k in _parent_keys(headers)}
        parent = self._propagator.extract(carrier) if carrier else None
        kind = self._span_kind
        with self._tracer.start_as_current_span("admitd.Check", context=parent, kind=kind) as span:
            yield span

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # flushes what the batch processor holds


tracing = Tracing()


def configure_tracing(
    environ: Mapping[str, str] | None = None,
    *,
    into: Tracing = tracing,
    exporter: Any = None,
) -> bool:
    """Turn tracing on from the OTEL_* environment; False (and a log line) when it stays off.

    `exporter` replaces the configured ones, synchronously (the tests' in-memory exporter).
    """
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "none").split(",") if n.strip()]
    if not names or names == ["none"] or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    unknown = [name for name in names if name not in ("otlp", "console")]
    if unknown and exporter is None:
        raise ConfigError(
            f"unknown exporter {unknown[0]!r}",
            file="environment variable OTEL_TRACES_EXPORTER",
            fix="otlp, console or none (comma-separated for several)",
        )
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER=%s but the otel extra is not installed"
            " (pip install 'admitd[otel]'): tracing is off",
            ",".join(names),
        )
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": "admitd"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    into._provider = provider
    into._tracer = provider.get_tracer("admitd")
    into._propagator = _propagator(env)
    into._span_kind = trace.SpanKind.SERVER
    into.enabled = True
    log.info("tracing on: exporters %s", ",".join(names))
    return True


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, TLS: OTEL_EXPORTER_OTLP_*


def _propagator(env: Mapping[str, str]) -> Any:
    if env.get("OTEL_PROPAGATORS"):
        from opentelemetry.propagate import get_global_textmap

        return get_global_textmap()  # built by OpenTelemetry from OTEL_PROPAGATORS
    from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return CompositePropagator([TraceContextTextMapPropagator(), B3MultiFormat(), B3SingleFormat()])


def _carrier(metadata: Sequence[tuple[str, str | bytes]]) -> dict[str, str]:
    found = {key: value for key, value in metadata if isinstance(value, str)}
    return found if any(name in found for name in _PARENT_HEADERS) else {}


def _parent_keys(headers: Mapping[str, str]) -> list[str]:
    if not any(name in headers for name in _PARENT_HEADERS):
        return []
    return [k for k in headers if k in _TRACE_HEADERS]


_TRACE_HEADERS = frozenset(
    {
        "traceparent",
        "tracestate",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "x-b3-parentspanid",
        "x-b3-flags",
    }
)
