"""Who is asking: the gRPC peer of a Check call, as gRPC itself saw it."""

from __future__ import annotations

import grpc

from admitd.core.context import NO_CALLER, Caller

__all__ = ["caller_of"]

# grpc's auth_context names for a verified TLS peer certificate.
_SAN = "x509_subject_alternative_name"
_COMMON_NAME = "x509_common_name"


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The Envoy behind this call: its transport, address and (on mTLS) certificate names.

    Nothing here comes from the CheckRequest, which the caller writes as it likes.
    """
    peer = context.peer() or ""
    if peer.startswith("unix:"):
        return Caller("unix")
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return NO_CALLER
    address = rest.rpartition(":")[0].strip("[]")
    auth = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return Caller("tcp", address)
    names = [*auth.get(_SAN, ()), *auth.get(_COMMON_NAME, ())]
    return Caller("tls", address, frozenset(n.decode("utf-8", "replace") for n in names))
