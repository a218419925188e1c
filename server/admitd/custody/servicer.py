"""`admitd.v1.Keys` over gRPC, on the admin server beside `admitd.v1.Sessions` and `Risk`.

Every RPC runs behind `admitd.admin.guard.ApiGuard` with `keys.custodians` as its
allowed principals; a refused caller is audited too (`kms.key_change.refused`,
why=not_custodian) before the guard answers PERMISSION_DENIED. No RPC returns key
material: the only key facts on the wire are `KeyVersion`s (alias, version, state,
creation date).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import grpc

from admitd._proto import keys_pb2 as pb
from admitd.admin.authz import authorized_principal, peer_names
from admitd.admin.errors import InvalidRequest
from admitd.admin.guard import ApiGuard, GuardedRpc, statuses_with
from admitd.custody.changes import ChangeKind, ChangeRequest, ChangeStatus, KeyChange
from admitd.custody.errors import ChangeNotFound, SameCustodian
from admitd.custody.store import KeyCustody
from admitd.kms.base import KeyState, KeyVersion
from admitd.kms.errors import KeyInUse, KeyNotFound

__all__ = ["KEYS_SERVICE_NAME", "KeysApi", "keys_handler"]

log = logging.getLogger(__name__)

KEYS_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Keys"].full_name
_STATUS = statuses_with(
    {
        ChangeNotFound: grpc.StatusCode.NOT_FOUND,
        KeyNotFound: grpc.StatusCode.NOT_FOUND,
        SameCustodian: grpc.StatusCode.PERMISSION_DENIED,
        KeyInUse: grpc.StatusCode.FAILED_PRECONDITION,
    }
)
_KINDS = {
    pb.KEY_CHANGE_KIND_ROTATE: ChangeKind.ROTATE,
    pb.KEY_CHANGE_KIND_RETIRE: ChangeKind.RETIRE,
    pb.KEY_CHANGE_KIND_REENCRYPT: ChangeKind.REENCRYPT,
    pb.KEY_CHANGE_KIND_PROVIDER: ChangeKind.PROVIDER,
}
_WIRE_KINDS = {kind: wire for wire, kind in _KINDS.items()}
_STATUSES = {
    ChangeStatus.PENDING: pb.KEY_CHANGE_STATUS_PENDING,
    ChangeStatus.APPROVED: pb.KEY_CHANGE_STATUS_APPROVED,
    ChangeStatus.APPLIED: pb.KEY_CHANGE_STATUS_APPLIED,
    ChangeStatus.FAILED: pb.KEY_CHANGE_STATUS_FAILED,
    ChangeStatus.EXPIRED: pb.KEY_CHANGE_STATUS_EXPIRED,
}
_STATES = {
    KeyState.ACTIVE: pb.KEY_STATE_ACTIVE,
    KeyState.DECRYPT_ONLY: pb.KEY_STATE_DECRYPT_ONLY,
    KeyState.RETIRED: pb.KEY_STATE_RETIRED,
}


def change_request_from_proto(request: pb.RequestKeyChangeRequest) -> ChangeRequest:
    kind = _KINDS.get(request.kind)
    if kind is None:
        raise InvalidRequest("kind must be rotate, retire, reencrypt or provider")
    return ChangeRequest(
        kind, request.alias, request.reason, request.version, request.provider_settings
    )


def proto_from_change(change: KeyChange) -> pb.KeyChange:
    message = pb.KeyChange(
        change_id=change.change_id,
        kind=_WIRE_KINDS[change.request.kind],
        alias=change.request.alias,
        version=change.request.version,
        reason=change.request.reason,
        requested_by=change.requested_by.principal,
        requested_user=change.requested_by.user_id,
        requested_at=change.requested_at,
        expires_at=change.expires_at,
        status=_STATUSES[change.status],
        result=change.result,
        error=change.error,
    )
    if change.request.kind is ChangeKind.PROVIDER:
        settings = change.request.provider
        message.provider_fingerprint = settings.fingerprint
        message.provider_summary = settings.summary
    if change.approved_by is not None:
        message.approved_by = change.approved_by.principal
        message.approved_user = change.approved_by.user_id
    if change.approved_at is not None:
        message.approved_at = change.approved_at
    if change.applied_at is not None:
        message.applied_at = change.applied_at
    return message


def proto_from_version(version: KeyVersion) -> pb.KeyVersion:
    return pb.KeyVersion(
        alias=version.alias,
        version=version.version,
        state=_STATES[version.state],
        created=version.created,
    )


class KeysApi:
    """One method per RPC: (request, authorised principal) in, response out."""

    def __init__(self, custody: KeyCustody) -> None:
        self._custody = custody

    async def request_key_change(
        self, request: pb.RequestKeyChangeRequest, principal: str
    ) -> pb.RequestKeyChangeResponse:
        change = await self._custody.request(
            change_request_from_proto(request), principal, request.session_token
        )
        return pb.RequestKeyChangeResponse(change=proto_from_change(change))

    async def approve_key_change(
        self, request: pb.ApproveKeyChangeRequest, principal: str
    ) -> pb.ApproveKeyChangeResponse:
        change = await self._custody.approve(request.change_id, principal, request.session_token)
        return pb.ApproveKeyChangeResponse(change=proto_from_change(change))

    async def list_key_changes(
        self, request: pb.ListKeyChangesRequest, _principal: str
    ) -> pb.ListKeyChangesResponse:
        changes = await self._custody.changes(pending_only=request.pending_only)
        return pb.ListKeyChangesResponse(changes=[proto_from_change(c) for c in changes])

    async def list_keys(self, _request: pb.ListKeysRequest, _principal: str) -> pb.ListKeysResponse:
        versions = await self._custody.versions()
        return pb.ListKeysResponse(versions=[proto_from_version(v) for v in versions])

    def rpcs(self) -> dict[str, tuple[GuardedRpc, type[Any]]]:
        return {
            "RequestKeyChange": (self.request_key_change, pb.RequestKeyChangeRequest),
            "ApproveKeyChange": (self.approve_key_change, pb.ApproveKeyChangeRequest),
            "ListKeyChanges": (self.list_key_changes, pb.ListKeyChangesRequest),
            "ListKeys": (self.list_keys, pb.ListKeysRequest),
        }


def keys_handler(custody: KeyCustody, custodians: Mapping[str, str]) -> grpc.GenericRpcHandler:
    """The generic handler of `admitd.v1.Keys`, every RPC open to `keys.custodians` only
    (none configured: every call is refused); pass it in `start_admin_server`'s
    `extra_handlers`."""
    if not custodians:
        log.warning("no keys.custodians configured: the keys API refuses every call")
    allowed = frozenset(custodians)
    guard = ApiGuard(
        "keys API",
        allowed,
        _STATUS,
        unavailable="key change store unavailable",
        allowed_key="keys.custodians",
    )
    handlers = {}
    for name, (rpc, message) in KeysApi(custody).rpcs().items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            _audit_refusals(custody, name, allowed, guard.guarded(name, rpc)),
            request_deserializer=message.FromString,
            response_serializer=lambda response: response.SerializeToString(),
        )
    return grpc.method_handlers_generic_handler(KEYS_SERVICE_NAME, handlers)


def _audit_refusals(custody: KeyCustody, name: str, allowed: frozenset[str], inner: Any) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        auth = context.auth_context()
        if authorized_principal(auth, allowed) is None:
            names = sorted(peer_names(auth))
            custody.refused(name, ",".join(names)[:300] or context.peer(), "not_custodian")
        return await inner(request, context)  # the guard refuses them

    return handle
