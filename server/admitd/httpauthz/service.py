"""The HTTP ext_authz Check: the gRPC Check's script (extauthz.service) over HTTP.

The same engine, decision log, metrics, audit and tracing; only the conversions differ.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from admitd.audit.receipt import Receipt, wait_durable
from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason
from admitd.core.outcomes import deny
from admitd.core.session_phase import is_browser_navigation
from admitd.engine import Engine
from admitd.extauthz.denial_page import DenialPages
from admitd.extauthz.service import CANCELLED, FAIL_CLOSED, Audit, record_check
from admitd.httpauthz.request import CheckInput, HttpRequest, check_input_from_http_request
from admitd.httpauthz.response import Reply, reply_from_decision, reply_from_page
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.tracing import UNTRACED, tracing

__all__ = ["HttpCheckService"]

log = logging.getLogger(__name__)

_EMPTY_CONTEXT = RequestContext(method="", scheme="", host="", path="")
# The edge's XFCC is the TLS peer's certificate; one that cannot be read is reported as
# the peer's (gRPC's include_peer_certificate has no other source either).
_PEER = "peer"


class HttpCheckService:
    """`answer(request)` never raises (but for cancellation): whatever goes wrong, the
    request is not admitted, and every answer is recorded."""

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
        """`with_caller`: tell the engine which connection asked (mesh identity needs it)."""
        self._engine = engine
        self.with_caller = with_caller
        self._pages = pages or DenialPages()
        self._metrics = metrics
        self._decisions = decisions
        self._audit = audit

    async def answer(self, request: HttpRequest) -> Reply:
        started = time.perf_counter()
        # Recorded unless a decision replaces it: the connection cancels this task when
        # Envoy gives up (its timeout passed and it closed the connection).
        ctx, decision, source = _EMPTY_CONTEXT, CANCELLED, ""
        span_scope = tracing.check_span(request.headers) if tracing.enabled else UNTRACED
        recorded = False
        try:
            with span_scope as span:
                try:
                    checked = check_input_from_http_request(request)
                    ctx = checked.ctx
                    decision, source = await self._decide(checked)
                    reply = self._reply(ctx, decision)
                except Exception:
                    # Fail closed in one place: the request is not admitted, the client
                    # sees a generic 503, and the traceback stays in our log.
                    log.exception("HTTP Check failed; answering fail-closed")
                    decision = replace(FAIL_CLOSED, page=is_browser_navigation(ctx))
                    source, reply = "", self._reply(ctx, decision)
                tracing.record_decision(span, decision)
            recorded = True
            await wait_durable(self._record(ctx, decision, source, time.perf_counter() - started))
            return reply
        finally:
            if not recorded:  # cancelled before the answer was ready
                self._record(ctx, decision, source, time.perf_counter() - started)

    async def _decide(self, checked: CheckInput) -> tuple[Decision, str]:
        if checked.certificate_problem:
            return self._unreadable_certificate(checked), _PEER
        decision, facts = await self._engine.check(checked.ctx, deadline=checked.deadline)
        return decision, facts.certificate.source

    def _unreadable_certificate(self, checked: CheckInput) -> Decision:
        """A forwarded certificate that is not what our edge writes: refused on every
        route (a public one too), since whoever wrote it is not the edge we trust."""
        problem = checked.certificate_problem
        decision = deny(
            checked.ctx,
            self._engine.policy,
            Reason.CERTIFICATE_MALFORMED,
            detail=problem,
            log_detail=problem,
        )
        return replace(decision, page=is_browser_navigation(checked.ctx))

    def _reply(self, ctx: RequestContext, decision: Decision) -> Reply:
        if decision.page:
            return reply_from_page(self._pages, decision, ctx.request_id)
        return reply_from_decision(decision)

    def _record(
        self, ctx: RequestContext, decision: Decision, source: str, seconds: float
    ) -> Receipt | None:
        return record_check(
            self._metrics, self._decisions, self._audit, (ctx, decision, source, seconds)
        )
