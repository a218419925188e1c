"""One guard for every admin-API service: authorise the caller's certificate, then map errors.

Every RPC of `admitd.v1.Sessions` and `admitd.v1.Risk` runs inside it, so no RPC can
be added without authorisation or a deliberate status for each failure. Refusals
are logged with the RPC and the peer; tokens, codes and secrets never are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import grpc

from admitd.admin.authz import authorized_principal
from admitd.admin.errors import InvalidRequest, PreconditionFailed
from admitd.errors import AdmitdError, StoreUnavailable

__all__ = ["ApiGuard", "GuardedRpc", "Statuses", "statuses_with"]

log = logging.getLogger(__name__)

# (request, authorised principal) -> response
GuardedRpc = Callable[[Any, str], Awaitable[Any]]
Handle = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Statuses = Mapping[type[AdmitdError], grpc.StatusCode]

# The refusals every admin-API service shares; each adds its own (what is "not found").
_SHARED_STATUSES: Statuses = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def statuses_with(own: Statuses) -> Statuses:
    """The status of each refusal for one service: the shared ones plus its `own`."""
    return MappingProxyType({**_SHARED_STATUSES, **own})


@dataclass(frozen=True, slots=True)
class ApiGuard:
    label: str  # "admin API", "risk API": names the service in log lines
    allowed: frozenset[str]
    statuses: Statuses  # built by `statuses_with`
    unavailable: str  # the client's message when the store cannot answer
    allowed_key: str = "admin.principals"  # the config key that lists `allowed`

    def handler(
        self, service: str, rpcs: Mapping[str, tuple[GuardedRpc, type[Any]]]
    ) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self.guarded(name, rpc),
                request_deserializer=message.FromString,
                response_serializer=lambda response: response.SerializeToString(),
            )
            for name, (rpc, message) in rpcs.items()
        }
        return grpc.method_handlers_generic_handler(service, handlers)

    def guarded(self, name: str, rpc: GuardedRpc) -> Handle:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal = authorized_principal(context.auth_context(), self.allowed)
            if principal is None:
                log.warning(
                    "%s %s refused: %s is not in %s",
                    self.label,
                    name,
                    context.peer(),
                    self.allowed_key,
                )
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, self._refusal())
                raise AssertionError("unreachable: abort raises")
            try:
                response = await rpc(request, principal)
            except Exception as exc:  # every failure becomes a deliberate status
                await context.abort(*self._status_for(name, principal, exc))
            log.info("%s %s by %s: ok", self.label, name, principal)
            return response

        return handle

    def _refusal(self) -> str:
        if not self.allowed:
            return f"no {self.allowed_key} are configured, so the {self.label} refuses every caller"
        return f"this client certificate is not in {self.allowed_key} (the {self.label})"

    def _status_for(self, name: str, principal: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
        status = next((s for kind, s in self.statuses.items() if isinstance(exc, kind)), None)
        if status is None:
            # Not a refusal: a malfunction (KMS, envelope) or a bug. Details stay in our log.
            log.error("%s %s by %s failed", self.label, name, principal, exc_info=exc)
            return grpc.StatusCode.INTERNAL, "admitd failed; details are in its log"
        log.info("%s %s by %s: %s (%s)", self.label, name, principal, status.name, exc)
        if status is grpc.StatusCode.UNAVAILABLE:
            return status, self.unavailable
        return status, str(exc)
