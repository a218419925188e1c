"""Verify the admin API caller's certificate on every call, exactly as a Check would.

gRPC's handshake only checks the chain against the trust bundle, once per connection.
A certificate on a CRL or the deny list would keep working, and an open connection
outlives any reload. So every RPC first runs the Check path's verifier (chain,
validity, clientAuth EKU, CRL, deny list) on the peer certificate, through the same
verdict cache, which `Runtime.reload_revocation` clears for both.

It is a server interceptor, so it covers every service on the admin port
(`admitd.v1.Sessions`, `admitd.v1.Risk`, anything added later) before any guard runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc

from admitd.certs.verify import Verdict, failed_verdict
from admitd.core.identity import CertificateProblem

__all__ = ["CallerCertificateCheck", "PeerVerdict", "peer_verdict"]

log = logging.getLogger(__name__)

# (PEM leaf, further PEM certificates the peer sent, now) -> verdict
PeerVerdict = Callable[[bytes, Sequence[bytes], datetime], Verdict]
Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

_LEAF = "x509_pem_cert"
_CHAIN = "x509_pem_cert_chain"  # the certificates the peer sent after its leaf


def peer_verdict(
    auth_context: Mapping[str, Sequence[bytes]], verdict_for: PeerVerdict, now: datetime
) -> Verdict:
    """The verdict for the certificate in a gRPC auth context; `missing` without one."""
    leaves = auth_context.get(_LEAF) or ()
    if not leaves:
        return failed_verdict(CertificateProblem.MISSING, "no client certificate")
    return verdict_for(leaves[0], tuple(auth_context.get(_CHAIN) or ()), now)


class CallerCertificateCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses any call whose client certificate a Check would refuse (UNAUTHENTICATED)."""

    def __init__(self, verdict_for: PeerVerdict, clock: Callable[[], float] = time.time) -> None:
        self._verdict_for = verdict_for
        self._clock = clock

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            # Every admin RPC is unary; a streaming one would bypass this check, so
            # it is not served at all (the client gets UNIMPLEMENTED).
            return None
        return grpc.unary_unary_rpc_method_handler(
            self._checked(details.method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _checked(self, method: str, behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            now = datetime.fromtimestamp(self._clock(), UTC)
            verdict = peer_verdict(context.auth_context(), self._verdict_for, now)
            if verdict.problem is not None:
                log.warning(
                    "admin port %s refused: client certificate %s (%s) from %s",
                    method,
                    verdict.problem.value,
                    verdict.detail,
                    context.peer(),
                )
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"client certificate not accepted: {verdict.problem.value}",
                )
            return await behaviour(request, context)

        return call
