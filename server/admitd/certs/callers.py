"""Envoys recognised by how their Check call reached admitd, as gRPC saw it.

The CheckRequest is written by whoever sends it; only the call itself (which socket, which
address, which verified client certificate) says who that is. A named caller may vouch for
the peer identity it verified (`mesh.callers`) or forward a client certificate in a header
(`trusted_proxies[].caller`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from admitd.core.context import Caller

__all__ = ["CheckCaller", "IpNetwork"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class CheckCaller:
    name: str
    unix_socket: bool = False  # any Check over admitd's Unix socket (`listen: unix://...`)
    principals: frozenset[str] = frozenset()  # its certificate on tls_listen (mTLS)
    networks: tuple[IpNetwork, ...] = ()  # the Check call's source address

    def recognises(self, caller: Caller) -> bool:
        """Over the Unix socket: `unix_socket`. Over TCP: every kind given must match, so
        `principals` and `cidrs` together mean a certificate *and* an address."""
        if caller.transport == "unix":
            return self.unix_socket
        if not (self.principals or self.networks):
            return False
        if self.principals and not (
            caller.transport == "tls" and self.principals & caller.principals
        ):
            return False
        return not self.networks or _in_networks(caller.address, self.networks)

    def overlaps(self, other: CheckCaller) -> bool:
        """Whether one Check call could be recognised as both (the config refuses that)."""
        if self.unix_socket and other.unix_socket:
            return True
        if not (self.principals or self.networks) or not (other.principals or other.networks):
            return False
        if self.principals and other.principals and self.principals.isdisjoint(other.principals):
            return False
        if self.networks and other.networks:
            return any(a.overlaps(b) for a in self.networks for b in other.networks)
        return True


def _in_networks(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
