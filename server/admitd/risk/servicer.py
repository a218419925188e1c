"""`admitd.v1.Risk` over gRPC, added to the admin server beside `admitd.v1.Sessions`.

Every RPC runs behind `admitd.admin.guard.ApiGuard`, which authorises the caller's
certificate and hands the principal to the RPC: dual control needs to know who
asks and who approves.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import grpc

from admitd._proto import risk_pb2 as pb
from admitd.admin.guard import ApiGuard, GuardedRpc, statuses_with
from admitd.risk.baseline import BaselineStore
from admitd.risk.convert import (
    baseline_response_from_baseline,
    override_request_from_proto,
    proto_from_override,
)
from admitd.risk.errors import OverrideNotFound, SameApprover
from admitd.risk.overrides import check_organisation

__all__ = ["RISK_SERVICE_NAME", "RiskApi", "risk_handler"]

log = logging.getLogger(__name__)


RISK_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Risk"].full_name
_STATUS = statuses_with(
    {
        OverrideNotFound: grpc.StatusCode.NOT_FOUND,
        SameApprover: grpc.StatusCode.PERMISSION_DENIED,
    }
)


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

    def rpcs(self) -> dict[str, tuple[GuardedRpc, type[Any]]]:
        return {
            "RequestOverride": (self.request_override, pb.RequestOverrideRequest),
            "ApproveOverride": (self.approve_override, pb.ApproveOverrideRequest),
            "ListOverrides": (self.list_overrides, pb.ListOverridesRequest),
            "GetBaseline": (self.get_baseline, pb.GetBaselineRequest),
        }


def risk_handler(baselines: BaselineStore, approvers: Collection[str]) -> grpc.GenericRpcHandler:
    """The generic handler of `admitd.v1.Risk`, every RPC open to `risk.approvers` only
    (none configured: every call is refused); add it with
    `server.add_generic_rpc_handlers((admin_handler(...), risk_handler(...)))`."""
    if not approvers:
        log.warning("no risk.approvers configured: the risk API refuses every call")
    guard = ApiGuard(
        "risk API",
        frozenset(approvers),
        _STATUS,
        unavailable="risk store unavailable",
        allowed_key="risk.approvers",
    )
    return guard.handler(RISK_SERVICE_NAME, RiskApi(baselines).rpcs())
