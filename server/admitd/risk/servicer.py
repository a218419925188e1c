"""`admitd.v1.Risk` over gRPC, added to the admin server beside `admitd.v1.Sessions`.

Like the sessions servicer, one wrapper authorises every RPC by the caller's
certificate and maps every failure to a deliberate status; unlike it, the wrapper
hands the authorised principal to the RPC, because dual control needs to know who
asks and who approves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from admitd._proto import risk_pb2 as pb
from admitd.admin.authz import authorized_principal
from admitd.errors import AdmitdError, StoreUnavailable
from admitd.risk.baseline import BaselineStore
from admitd.risk.convert import (
    baseline_response_from_baseline,
    override_request_from_proto,
    proto_from_override,
)
from admitd.risk.errors import InvalidRequest, OverrideNotFound, PreconditionFailed, SameApprover
from admitd.risk.overrides import check_organisation

__all__ = ["RISK_SERVICE_NAME", "RiskApi", "risk_handler"]

log = logging.getLogger(__name__)

RISK_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Risk"].full_name
_STATUS: Mapping[type[AdmitdError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    OverrideNotFound: grpc.StatusCode.NOT_FOUND,
    SameApprover: grpc.StatusCode.PERMISSION_DENIED,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
}
Rpc = Callable[[Any, str], Awaitable[Any]]


class RiskApi:
    """One method per RPC: (request, authorised principal) in, response out."""

    def __init__(self, baselines: BaselineStore) -> None:
        self._baselines = baselines

    async def request_override(
        self, request: pb.RequestOverrideRequest, principal: str
    ) -> pb.RequestOverrideResponse:
        override = await self._baselines.request_override(
            override_request_from_proto(request), principal
        )
        return pb.RequestOverrideResponse(override=proto_from_override(override))

    async def approve_override(
        self, request: pb.ApproveOverrideRequest, principal: str
    ) -> pb.ApproveOverrideResponse:
        override = await self._baselines.approve_override(request.override_id, principal)
        return pb.ApproveOverrideResponse(override=proto_from_override(override))

    async def list_overrides(
        self, request: pb.ListOverridesRequest, _principal: str
    ) -> pb.ListOverridesResponse:
        if request.organisation:
            check_organisation(request.organisation)
        overrides = await self._baselines.list_overrides(
            request.organisation, pending_only=request.pending_only
        )
        return pb.ListOverridesResponse(overrides=[proto_from_override(o) for o in overrides])

    async def get_baseline(
        self, request: pb.GetBaselineRequest, _principal: str
    ) -> pb.GetBaselineResponse:
        baseline = await self._baselines.load(check_organisation(request.organisation))
        return baseline_response_from_baseline(baseline, self._baselines.default_threshold)

    def rpcs(self) -> dict[str, tuple[Rpc, type[Any]]]:
        return {
            "RequestOverride": (self.request_override, pb.RequestOverrideRequest),
            "ApproveOverride": (self.approve_override, pb.ApproveOverrideRequest),
            "ListOverrides": (self.list_overrides, pb.ListOverridesRequest),
            "GetBaseline": (self.get_baseline, pb.GetBaselineRequest),
        }


def risk_handler(baselines: BaselineStore, principals: Iterable[str]) -> grpc.GenericRpcHandler:
    """The generic handler of `admitd.v1.Risk`; add it with
    `server.add_generic_rpc_handlers((admin_handler(...), risk_handler(...)))`."""
    allowed = frozenset(principals)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(name, rpc, allowed),
            request_deserializer=message.FromString,
            response_serializer=lambda response: response.SerializeToString(),
        )
        for name, (rpc, message) in RiskApi(baselines).rpcs().items()
    }
    return grpc.method_handlers_generic_handler(RISK_SERVICE_NAME, handlers)


def _guarded(name: str, rpc: Rpc, allowed: frozenset[str]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        principal = authorized_principal(context.auth_context(), allowed)
        if principal is None:
            log.warning("risk API %s refused: %s is not in admin.principals", name, context.peer())
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "this client certificate is not allowed to use the admin API",
            )
            raise AssertionError("unreachable: abort raises")
        try:
            response = await rpc(request, principal)
        except Exception as exc:  # every failure becomes a deliberate status
            await context.abort(*_status_for(name, principal, exc))
        log.info("risk API %s by %s: ok", name, principal)
        return response

    return handle


def _status_for(name: str, principal: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
    status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), None)
    if status is None:
        log.error("risk API %s by %s failed", name, principal, exc_info=exc)
        return grpc.StatusCode.INTERNAL, "admitd failed; details are in its log"
    log.info("risk API %s by %s: %s (%s)", name, principal, status.name, exc)
    if status is grpc.StatusCode.UNAVAILABLE:
        return status, "risk store unavailable"
    return status, str(exc)
