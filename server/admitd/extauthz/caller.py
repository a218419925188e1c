"""Who is asking: the gRPC peer of a Check call, as gRPC itself saw it."""

from __future__ import annotations

from urllib.parse import unquote

import grpc

from admitd.core.context import NO_CALLER, Caller

__all__ = ["caller_of"]

# grpc's auth_context name for a verified TLS peer certificate's SANs (URIs, DNS names,
# IPs, as text). The common name is left out on purpose: a CA that lets its subjects
# pick their CN would let anyone spell a caller's principal there.
_SAN = "x509_subject_alternative_name"


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The Envoy behind this call: its transport, address and (on mTLS) certificate names.

    Nothing here comes from the CheckRequest, which the caller writes as it likes.
    """
    # gRPC percent-encodes the brackets of an IPv6 peer: "ipv6:%5B::1%5D:51234".
    peer = unquote(context.peer() or "")
    if peer.startswith("unix:"):
        return Caller("unix")
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return NO_CALLER
    address = rest.rpartition(":")[0].strip("[]")
    auth = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return Caller("tcp", address)
    names = auth.get(_SAN, ())
    return Caller("tls", address, frozenset(n.decode("utf-8", "replace") for n in names))
