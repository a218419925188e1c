"""Who may call the admin API: the mTLS peer's certificate identity against `admin.principals`.

gRPC has already verified the chain against the trust bundle (the server requires
a client certificate); here only the identity is matched, read from the peer
certificate itself rather than from gRPC's pre-digested properties, so it is
the same SAN URI / DNS / RFC 4514 subject the rest of admitd uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cryptography import x509

from admitd.certs.decoding import CERTIFICATE_ERRORS
from admitd.certs.verify import identity_from_certificate

__all__ = ["authorized_principal", "peer_names"]

_PEM_CERT = "x509_pem_cert"


def peer_names(auth_context: Mapping[str, Sequence[bytes]]) -> frozenset[str]:
    """SAN URIs, SAN DNS names and the subject of the peer certificate; empty without one."""
    pems = auth_context.get(_PEM_CERT) or ()
    if not pems:
        return frozenset()
    try:
        identity = identity_from_certificate(x509.load_pem_x509_certificate(pems[0]))
    except CERTIFICATE_ERRORS:
        return frozenset()
    return frozenset((*identity.uris, *identity.dns_names, identity.subject))


def authorized_principal(
    auth_context: Mapping[str, Sequence[bytes]], principals: Iterable[str]
) -> str | None:
    """The first allowed principal the peer holds (sorted, so logs are stable), else None."""
    matches = peer_names(auth_context) & frozenset(principals)
    return min(matches) if matches else None
