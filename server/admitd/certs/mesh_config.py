"""The `mesh:` config section, and the named Check callers it and `trusted_proxies` use."""

from __future__ import annotations

from dataclasses import dataclass

from admitd.certs.callers import CheckCaller
from admitd.certs.mesh import MeshSettings
from admitd.certs.spiffe import trust_domain_problem
from admitd.fields import Fields

__all__ = [
    "CALLER_KEYS",
    "SECTION_KEYS",
    "ListenFacts",
    "check_caller",
    "mesh_settings_from_fields",
]

SECTION_KEYS = {"trust_domains", "callers", "require_certificate", "unnamed_callers"}
CALLER_KEYS = {"name", "unix_socket", "principals", "cidrs"}
_DOCS = "see docs/mesh.md"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenFacts:
    """What the Check listeners allow a caller to be recognised by."""

    unix_listen: bool  # `listen` is a Unix socket
    mtls_listen: bool  # `tls_listen` requires client certificates
    tcp_listen: bool  # some Check listener is TCP (`listen` or `tls_listen`)


def mesh_settings_from_fields(
    fields: Fields, listen: ListenFacts, *, present: bool
) -> MeshSettings | None:
    """None when the section is absent; `mesh:` written but empty is an error (it would
    silently leave mesh identity off)."""
    if not present:
        return None
    if not fields.raw:
        raise fields.error(
            "trust_domains", "mesh: is empty", "set trust_domains and callers, or remove mesh:"
        )
    domains = fields.texts("trust_domains")
    if not domains:
        raise fields.error("trust_domains", "required", "e.g. [cluster.local]")
    for domain in domains:
        problem = trust_domain_problem(domain)
        if problem:
            raise fields.error("trust_domains", f"{domain!r}: {problem}", "e.g. cluster.local")
    raw_callers = fields.mapping_list("callers")
    if not raw_callers:
        raise fields.error(
            "callers", "required: name the Envoys whose verified identity admitd believes", _DOCS
        )
    callers = tuple(
        check_caller(Fields(fields.doc, path, raw, CALLER_KEYS), listen, "")
        for path, raw in raw_callers
    )
    names = [caller.name for caller in callers]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise fields.error(
            "callers", f"two callers are named {duplicate!r}", "give each its own name"
        )
    return MeshSettings(
        frozenset(domains),
        callers,
        fields.flag("require_certificate", False),
        fields.choice("unnamed_callers", "refuse", ("refuse", "edge")),
    )


def check_caller(fields: Fields, listen: ListenFacts, default_name: str) -> CheckCaller:
    """One named caller: `unix_socket`, `principals` (on tls_listen) and/or `cidrs`."""
    unix_socket = fields.flag("unix_socket", False)
    principals, cidrs = fields.texts("principals"), fields.texts("cidrs")
    if not (unix_socket or principals or cidrs):
        raise fields.error(
            "unix_socket", "a caller needs `unix_socket`, `principals` or `cidrs`", _DOCS
        )
    if unix_socket and not listen.unix_listen:
        raise fields.error(
            "unix_socket",
            "listen is not a Unix socket",
            "set listen: unix:///run/admitd/check.sock",
        )
    if principals and not listen.mtls_listen:
        raise fields.error(
            "principals",
            "a caller's certificate is only verified on tls_listen with client_ca",
            "configure tls_listen.client_ca, or name the caller by unix_socket or cidrs",
        )
    networks = fields.networks("cidrs", "127.0.0.1/32 or ::1/128")
    if any(network.prefixlen == 0 for network in networks):
        raise fields.error(
            "cidrs", "a network of every address trusts anyone who can connect", _DOCS
        )
    if networks and not listen.tcp_listen:
        raise fields.error(
            "cidrs", "no Check listener is TCP, so no call can come from an address", _DOCS
        )
    fallback = default_name or ("unix-socket" if unix_socket else (principals or cidrs)[0])
    return CheckCaller(fields.text("name", fallback), unix_socket, frozenset(principals), networks)
