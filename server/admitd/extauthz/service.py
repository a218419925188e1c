"""The gRPC `envoy.service.auth.v3.Authorization/Check`: a short script of named steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse

from admitd.audit.receipt import Receipt, wait_durable
from admitd.core.context import NO_CALLER, RequestContext
from admitd.core.decision import Decision, Reason
from admitd.core.session_phase import is_browser_navigation
from admitd.engine import Engine
from admitd.extauthz.caller import caller_of
from admitd.extauthz.denial_page import DenialPages
from admitd.extauthz.request import context_from_check_request
from admitd.extauthz.response import check_response_from_decision
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.tracing import UNTRACED, tracing

__all__ = ["CANCELLED", "FAIL_CLOSED", "Audit", "AuthorizationService", "record_check"]

log = logging.getLogger(__name__)

FAIL_CLOSED = Decision(
    allowed=False,
    reason=Reason.AUTHORIZATION_UNAVAILABLE,
    message="admitd could not decide, so the request is not admitted. Try again later.",
    client_headers=(("x-admitd-reason", Reason.AUTHORIZATION_UNAVAILABLE.value),),
)
# Envoy stopped waiting, so its `status_on_error` answered the client; this is only recorded.
CANCELLED = replace(FAIL_CLOSED, log_detail="cancelled before a decision (Envoy gave up)")
_EMPTY_CONTEXT = RequestContext(method="", scheme="", host="", path="")
# Queues a decision's audit; a receipt back settles once its entry is durable.
Audit = Callable[[RequestContext, Decision], Receipt | None]


def record_check(
    metrics: Metrics,
    decisions: DecisionLog,
    audit: Audit | None,
    answered: tuple[RequestContext, Decision, str, float],
) -> Receipt | None:
    """What every Check leaves behind, whichever transport asked: the metrics, the
    decision log line and, queued off the hot path, the audit (ctx, decision, source, s).

    With durable answers the audit's receipt comes back: the caller answers once it
    settles, and the metrics and the decision log line are written then, with the wait
    in the Check's time, so a decision that a crash took with its entry was neither
    answered nor logged."""
    ctx, decision, source, seconds = answered
    receipt = audit(ctx, decision) if audit is not None else None
    if receipt is None:
        metrics.observe(decision, seconds)
        decisions.record(ctx, decision, source, seconds)
        return None
    queued, decided_at = time.perf_counter(), time.time()

    def durable(_: object) -> None:
        total = seconds + (time.perf_counter() - queued)
        metrics.observe(decision, total)
        decisions.record(ctx, decision, source, total, at=decided_at)

    receipt.add_done_callback(durable)
    return receipt


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        decisions: DecisionLog,
        audit: Audit | None = None,
        pages: DenialPages | None = None,
        *,
        with_caller: bool = False,
    ) -> None:
        """`with_caller`: tell the engine which Envoy asked (mesh identity needs it)."""
        self._engine = engine
        self._with_caller = with_caller
        self._pages = pages or DenialPages()
        self._metrics = metrics
        self._decisions = decisions
        self._audit = audit

    async def Check(
        self, request: CheckRequest, context: grpc.aio.ServicerContext
    ) -> CheckResponse:
        started = time.perf_counter()
        # What is recorded unless a decision replaces it: gRPC cancels this task when
        # Envoy gives up (its deadline passed, the stream was reset), and that Check is
        # still counted and logged, as OPA-Envoy logs every decision even on cancel.
        ctx, decision, source = _EMPTY_CONTEXT, CANCELLED, ""
        span_scope = (  # reading gRPC metadata only costs when tracing is on
            tracing.check_span(request.attributes.request.http.headers, _metadata(context))
            if tracing.enabled
            else UNTRACED
        )
        recorded = False
        try:
            with span_scope as span:
                try:
                    caller = caller_of(context) if self._with_caller else NO_CALLER
                    ctx = context_from_check_request(request, caller)
                    decision, facts = await self._engine.check(ctx, deadline=_deadline(context))
                    source = facts.certificate.source
                except Exception:
                    # Fail closed in one place: whatever goes wrong, the request is not
                    # admitted and the client sees a generic 503, while the traceback stays
                    # in our log.
                    log.exception("Check failed; answering fail-closed")
                    decision, source = replace(FAIL_CLOSED, page=is_browser_navigation(ctx)), ""
                tracing.record_decision(span, decision)
            if decision.page:
                response = self._pages.response(decision, ctx.request_id)
            else:
                response = check_response_from_decision(decision)
            recorded = True
            await wait_durable(self._record(ctx, decision, source, time.perf_counter() - started))
            return response
        finally:
            if not recorded:  # cancelled or failed before the answer was ready
                self._record(ctx, decision, source, time.perf_counter() - started)

    def _record(
        self, ctx: RequestContext, decision: Decision, source: str, seconds: float
    ) -> Receipt | None:
        return record_check(
            self._metrics, self._decisions, self._audit, (ctx, decision, source, seconds)
        )


def _metadata(context: grpc.aio.ServicerContext) -> Sequence[tuple[str, str | bytes]]:
    return tuple(context.invocation_metadata() or ())


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    """Envoy's deadline for this Check (its ext_authz `timeout`) on time.monotonic()."""
    remaining = context.time_remaining()
    return time.monotonic() + remaining if isinstance(remaining, int | float) else None
