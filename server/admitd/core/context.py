"""The request as admitd sees it: an immutable, protobuf-free view of a CheckRequest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["RequestContext"]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One HTTP request that Envoy asks about.

    `headers` keys are lower-case (HTTP/2 and Envoy's CheckRequest already use
    lower case). `peer_certificate` is the URL-encoded PEM Envoy saw on the TLS
    connection (`include_peer_certificate: true`), or "" when there was none.
    `envoy_principal` is what Envoy reports as the peer's principal; it is NOT
    trusted on its own, because the edge listener accepts untrusted chains so
    that admitd can explain the failure (see envoy/edge.yaml).
    `context_extensions` are Envoy's per-route ext_authz settings.
    """

    method: str
    scheme: str
    host: str
    path: str
    headers: Mapping[str, str] = field(default_factory=_empty)
    source_address: str = ""
    peer_certificate: str = ""
    envoy_principal: str = ""
    request_id: str = ""
    context_extensions: Mapping[str, str] = field(default_factory=_empty)
    malformed: tuple[str, ...] = field(default=())

    path_only: str = field(init=False, default="")

    def __post_init__(self) -> None:
        # The path without query or fragment: matched and logged several times per
        # request, so it is cut once here.
        cut = len(self.path)
        for sep in ("?", "#"):
            index = self.path.find(sep)
            if 0 <= index < cut:
                cut = index
        object.__setattr__(self, "path_only", self.path[:cut])

    def header(self, name: str) -> str:
        """Value of a header by lower-case name, or ""."""
        return self.headers.get(name, "")
