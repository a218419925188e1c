"""The only admin code that touches protobuf messages: request -> typed, typed -> response."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from admitd._proto import sessions_pb2 as pb
from admitd.admin.errors import InvalidRequest
from admitd.admin.sessions import DeviceTelemetry, NewSession, ref_for_session, ref_for_token
from admitd.mfa.ports import MfaResult
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.tokens import SessionRef

__all__ = [
    "mfa_result_from_proto",
    "new_session_from_request",
    "proto_from_mfa_result",
    "ref_from_target",
    "session_info_from_session",
]

_METHODS: Mapping[MfaMethod, pb.MfaMethod] = MappingProxyType(
    {MfaMethod.TOTP: pb.MFA_METHOD_TOTP, MfaMethod.PASSKEY: pb.MFA_METHOD_PASSKEY}
)
_RESULTS: Mapping[MfaResult, pb.MfaResult] = MappingProxyType(
    {
        MfaResult.OK: pb.MFA_RESULT_OK,
        MfaResult.INVALID: pb.MFA_RESULT_INVALID,
        MfaResult.REPLAYED: pb.MFA_RESULT_REPLAYED,
        MfaResult.LOCKED_OUT: pb.MFA_RESULT_LOCKED_OUT,
        MfaResult.NOT_ENROLLED: pb.MFA_RESULT_NOT_ENROLLED,
    }
)


def proto_from_mfa_method(method: MfaMethod | None) -> pb.MfaMethod:
    return pb.MFA_METHOD_UNSPECIFIED if method is None else _METHODS[method]


def mfa_method_from_proto(value: int) -> MfaMethod | None:
    return next((m for m, p in _METHODS.items() if p == value), None)


def proto_from_mfa_result(result: MfaResult) -> pb.MfaResult:
    return _RESULTS[result]


def mfa_result_from_proto(value: int) -> MfaResult | None:
    return next((r for r, p in _RESULTS.items() if p == value), None)


def new_session_from_request(request: pb.CreateSessionRequest) -> NewSession:
    has_mfa = request.HasField("mfa_verified_at")
    method = mfa_method_from_proto(request.mfa_method)
    if has_mfa and method is None:
        raise InvalidRequest("mfa_verified_at needs mfa_method (TOTP or PASSKEY)")
    return NewSession(
        user_id=request.user_id,
        organisation=request.organisation,
        roles=frozenset(request.roles),
        device_id=request.device_id,
        telemetry=DeviceTelemetry(
            user_agent=request.user_agent if request.HasField("user_agent") else None,
            ip=request.ip if request.HasField("ip") else None,
            geo=request.geo if request.HasField("geo") else None,
        ),
        mfa_verified_at=request.mfa_verified_at if has_mfa else None,
        mfa_method=method if has_mfa else None,
        enrolment_grant_seconds=(
            request.enrolment_grant_seconds if request.HasField("enrolment_grant_seconds") else None
        ),
    )


def ref_from_target(request: pb.RevokeSessionRequest | pb.VerifyMfaRequest) -> SessionRef:
    """The session a request names, by token or by (user_id, session_id)."""
    target = request.WhichOneof("target")
    if target == "session_token":
        return ref_for_token(request.session_token)
    if target == "session":
        return ref_for_session(request.session.user_id, request.session.session_id)
    raise InvalidRequest("name the session: session_token, or session {user_id, session_id}")


def session_info_from_session(session: Session, now: float) -> pb.SessionInfo:
    """Everything about a session except its token, which admitd never has."""
    info = pb.SessionInfo(
        session_id=session.session_id,
        user_id=session.user_id,
        organisation=session.organisation,
        roles=sorted(session.roles),
        device_id=session.device_id,
        created_at=session.created_at,
        last_seen_at=session.last_seen_at,
        idle_expires_at=min(
            session.last_seen_at + session.idle_timeout, session.absolute_expires_at
        ),
        absolute_expires_at=session.absolute_expires_at,
        mfa_method=proto_from_mfa_method(session.mfa_method),
        expired=session.is_expired(now),
    )
    if session.mfa_verified_at is not None:
        info.mfa_verified_at = session.mfa_verified_at
    return info
