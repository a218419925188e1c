"""Which certificate a request presents: the TLS peer's, or one a trusted proxy forwarded."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from admitd.certs.callers import CheckCaller
from admitd.certs.pem import CertificateParseError, certificates_from_der, certificates_from_pem
from admitd.certs.rfc9440 import Rfc9440Error, der_from_client_cert, ders_from_client_cert_chain
from admitd.certs.xfcc import XfccError, parse_xfcc
from admitd.core.outcomes import FORWARDED_CERT_HEADERS

__all__ = [
    "FORWARDED_CERT_HEADERS",
    "ForwardHeader",
    "ForwardedCertificateError",
    "TrustedProxy",
    "chain_from_forwarded",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForwardHeader(StrEnum):
    """How a trusted proxy passes the client certificate on."""

    XFCC = "xfcc"  # x-forwarded-client-cert, Envoy's format (Cert= and Chain=)
    X_CLIENT_CERT = "x-client-cert"  # URL-encoded PEM, leaf first, optional chain after
    CLIENT_CERT = "client-cert"  # RFC 9440 Client-Cert (+ Client-Cert-Chain)


@dataclass(frozen=True, slots=True)
class TrustedProxy:
    """A proxy allowed to forward client certificates.

    It is recognised by the identity of its own (verified) client certificate or
    by the source address Envoy saw; never by anything it merely claims in a header.
    `caller` names the proxy when it is the Envoy asking admitd itself (a gateway that
    verified the client certificate and forwards it in XFCC): recognised by the Check call.
    """

    name: str
    header: ForwardHeader
    principals: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()
    caller: CheckCaller | None = None

    def has_address(self, address: str) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


class ForwardedCertificateError(ValueError):
    def __init__(self, message: str, *, too_long: bool = False) -> None:
        super().__init__(message)
        self.too_long = too_long


def chain_from_forwarded(
    header: ForwardHeader,
    values: tuple[str, str],
    *,
    peer_fingerprint: str,
    max_count: int,
) -> list[x509.Certificate]:
    """Parse the forwarded chain, leaf first. `values` are the header's primary and chain values.

    Raises ForwardedCertificateError with a reason fit for the client.
    """
    try:
        if header is ForwardHeader.XFCC:
            return _from_xfcc(values[0], peer_fingerprint, max_count)
        if header is ForwardHeader.X_CLIENT_CERT:
            return certificates_from_pem(values[0], max_count=max_count)
        ders = [der_from_client_cert(values[0])]
        if values[1]:
            ders += ders_from_client_cert_chain(values[1], max_count=max_count)
        return certificates_from_der(ders, max_count=max_count)
    except CertificateParseError as exc:
        raise ForwardedCertificateError(str(exc), too_long=exc.too_long) from None
    except Rfc9440Error as exc:
        raise ForwardedCertificateError(f"{header.value}: {exc}", too_long=exc.too_long) from None
    except XfccError as exc:
        raise ForwardedCertificateError(f"{header.value}: {exc}") from None


def _from_xfcc(raw: str, peer_fingerprint: str, max_count: int) -> list[x509.Certificate]:
    elements = parse_xfcc(raw)
    # The last element is the nearest hop's view. An element whose Hash is the
    # trusted proxy's own certificate was appended by our Envoy for that hop.
    # Without a peer certificate (the proxy is the Envoy asking) no element is its own.
    candidates = [
        e for e in elements if not peer_fingerprint or e.get("hash", "").lower() != peer_fingerprint
    ]
    if not candidates:
        raise XfccError("no element describes the client")
    element = candidates[-1]
    if "chain" in element:
        return certificates_from_pem(element["chain"], max_count=max_count)
    if "cert" in element:
        return certificates_from_pem(element["cert"], max_count=max_count)
    raise XfccError("element has no Cert or Chain (enable set_current_client_cert_details.cert)")
