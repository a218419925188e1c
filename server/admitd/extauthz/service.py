"""The gRPC `envoy.service.auth.v3.Authorization/Check`: a short script of named steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason
from admitd.engine import Engine
from admitd.extauthz.request import context_from_check_request
from admitd.extauthz.response import check_response_from_decision
from admitd.logs import DecisionLog
from admitd.metrics import Metrics

__all__ = ["FAIL_CLOSED", "AuthorizationService"]

log = logging.getLogger(__name__)

FAIL_CLOSED = Decision(
    allowed=False,
    reason=Reason.AUTHORIZATION_UNAVAILABLE,
    message="admitd could not decide, so the request is not admitted. Try again later.",
    client_headers=(("x-admitd-reason", Reason.AUTHORIZATION_UNAVAILABLE.value),),
)
_EMPTY_CONTEXT = RequestContext(method="", scheme="", host="", path="")


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        decisions: DecisionLog,
        audit: Callable[[RequestContext, Decision], None] | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._decisions = decisions
        self._audit = audit

    async def Check(
        self, request: CheckRequest, context: grpc.aio.ServicerContext
    ) -> CheckResponse:
        started = time.perf_counter()
        ctx, decision, source = await self._decide(request)
        response = check_response_from_decision(decision)
        elapsed = time.perf_counter() - started
        self._metrics.observe(decision, elapsed)
        self._decisions.record(ctx, decision, source, elapsed)
        if self._audit is not None:
            self._audit(ctx, decision)  # queued; the append itself happens off the hot path
        return response

    async def _decide(self, request: CheckRequest) -> tuple[RequestContext, Decision, str]:
        # Fail closed in one place: whatever goes wrong, the request is not admitted
        # and the client sees a generic 503, while the traceback stays in our log.
        ctx = _EMPTY_CONTEXT
        try:
            ctx = context_from_check_request(request)
            decision, facts = await self._engine.check(ctx)
        except Exception:
            log.exception("Check failed; answering fail-closed")
            return ctx, FAIL_CLOSED, ""
        return ctx, decision, facts.certificate.source
