"""`admitd.v1.Sessions` over gRPC; every RPC runs behind `admitd.admin.guard.ApiGuard`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from admitd._proto import sessions_pb2 as pb
from admitd.admin.convert import (
    new_session_from_request,
    proto_from_mfa_method,
    proto_from_mfa_result,
    ref_from_target,
    session_info_from_session,
)
from admitd.admin.errors import SessionNotFound
from admitd.admin.guard import ApiGuard, GuardedRpc, statuses_with
from admitd.admin.sessions import SessionAdmin

__all__ = ["SERVICE_NAME", "AdminApi", "admin_handler"]


SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Sessions"].full_name
_STATUS = statuses_with({SessionNotFound: grpc.StatusCode.NOT_FOUND})
Rpc = Callable[[Any], Awaitable[Any]]


class AdminApi:
    """One method per RPC: protobuf request in, protobuf response out."""

    def __init__(self, admin: SessionAdmin, clock: Callable[[], float] = time.time) -> None:
        self._admin, self._clock = admin, clock

    async def create_session(self, request: pb.CreateSessionRequest) -> pb.CreateSessionResponse:
        created = await self._admin.create(new_session_from_request(request))
        session = created.session
        return pb.CreateSessionResponse(
            session_token=created.token,
            session_id=session.session_id,
            expires_at=session.absolute_expires_at,
            idle_timeout=session.idle_timeout,
        )

    async def list_user_sessions(
        self, request: pb.ListUserSessionsRequest
    ) -> pb.ListUserSessionsResponse:
        sessions, factors = await self._admin.list_user(request.user_id)
        now = self._clock()
        return pb.ListUserSessionsResponse(
            sessions=[session_info_from_session(s, now) for s in sessions],
            factors=[proto_from_mfa_method(f) for f in sorted(factors)],
        )

    async def revoke_session(self, request: pb.RevokeSessionRequest) -> pb.RevokeSessionResponse:
        return pb.RevokeSessionResponse(revoked=await self._admin.revoke(ref_from_target(request)))

    async def revoke_user_sessions(
        self, request: pb.RevokeUserSessionsRequest
    ) -> pb.RevokeUserSessionsResponse:
        revoked = await self._admin.revoke_user(request.user_id)
        return pb.RevokeUserSessionsResponse(revoked=revoked)

    async def begin_totp_enrolment(
        self, request: pb.BeginTotpEnrolmentRequest
    ) -> pb.BeginTotpEnrolmentResponse:
        enrolment = await self._admin.begin_totp(request.user_id, request.organisation)
        return pb.BeginTotpEnrolmentResponse(
            provisioning_uri=enrolment.provisioning_uri, qr_png_base64=enrolment.qr_png_base64
        )

    async def confirm_totp_enrolment(
        self, request: pb.ConfirmTotpEnrolmentRequest
    ) -> pb.ConfirmTotpEnrolmentResponse:
        result = await self._admin.confirm_totp(request.user_id, request.organisation, request.code)
        return pb.ConfirmTotpEnrolmentResponse(result=proto_from_mfa_result(result))

    async def verify_mfa(self, request: pb.VerifyMfaRequest) -> pb.VerifyMfaResponse:
        result, verified_at = await self._admin.verify_mfa(ref_from_target(request), request.code)
        response = pb.VerifyMfaResponse(result=proto_from_mfa_result(result))
        if verified_at is not None:
            response.mfa_verified_at = verified_at
        return response

    def rpcs(self) -> dict[str, tuple[Rpc, type[Any]]]:
        """RPC name -> (handler, request message class)."""
        return {
            "CreateSession": (self.create_session, pb.CreateSessionRequest),
            "ListUserSessions": (self.list_user_sessions, pb.ListUserSessionsRequest),
            "RevokeSession": (self.revoke_session, pb.RevokeSessionRequest),
            "RevokeUserSessions": (self.revoke_user_sessions, pb.RevokeUserSessionsRequest),
            "BeginTotpEnrolment": (self.begin_totp_enrolment, pb.BeginTotpEnrolmentRequest),
            "ConfirmTotpEnrolment": (self.confirm_totp_enrolment, pb.ConfirmTotpEnrolmentRequest),
            "VerifyMfa": (self.verify_mfa, pb.VerifyMfaRequest),
        }


def admin_handler(api: AdminApi, principals: Iterable[str]) -> grpc.GenericRpcHandler:
    """The generic handler of `admitd.v1.Sessions`, each RPC guarded by `principals`."""
    guard = ApiGuard(
        "admin API", frozenset(principals), _STATUS, unavailable="session store unavailable"
    )
    return guard.handler(
        SERVICE_NAME,
        {name: (_ignoring_principal(rpc), message) for name, (rpc, message) in api.rpcs().items()},
    )


def _ignoring_principal(rpc: Rpc) -> GuardedRpc:
    async def call(request: Any, _principal: str) -> Any:
        return await rpc(request)

    return call
