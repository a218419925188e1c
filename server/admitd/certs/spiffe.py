"""SPIFFE IDs as the SPIFFE-ID specification writes them: `spiffe://<trust domain>/<path>`.

Strict on purpose: an ID that two parsers could read differently (upper case, a port,
`..`, an empty segment, percent-encoding) is refused, not normalised.
"""

from __future__ import annotations

import re

__all__ = ["SpiffeIdError", "spiffe_trust_domain", "trust_domain_problem", "workload_id_problem"]

_SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_MAX_BYTES = 2048


class SpiffeIdError(ValueError):
    """Not a SPIFFE ID; the message says which rule it breaks."""


def spiffe_trust_domain(spiffe_id: str) -> str:
    """The trust domain of a well-formed SPIFFE ID; raises SpiffeIdError otherwise."""
    if len(spiffe_id) > _MAX_BYTES:
        raise SpiffeIdError(f"longer than {_MAX_BYTES} bytes")
    if not spiffe_id.startswith(_SCHEME):
        raise SpiffeIdError("does not start with spiffe://")
    domain, slash, path = spiffe_id[len(_SCHEME) :].partition("/")
    problem = trust_domain_problem(domain)
    if problem:
        raise SpiffeIdError(problem)
    if slash:
        for segment in path.split("/"):
            if not segment:
                raise SpiffeIdError("empty path segment (or a trailing slash)")
            if segment in (".", ".."):
                raise SpiffeIdError("'.' or '..' path segment")
            if not _SEGMENT.fullmatch(segment):
                raise SpiffeIdError("path segments allow only letters, digits, '.', '-' and '_'")
    return domain


def trust_domain_problem(domain: str) -> str:
    """ "" for a valid trust domain name, else what is wrong with it."""
    if not domain:
        return "no trust domain"
    if not _TRUST_DOMAIN.fullmatch(domain):
        return "the trust domain allows only lower-case letters, digits, '.', '-' and '_'"
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return "the trust domain has an empty label (a leading, trailing or double dot)"
    return ""


def workload_id_problem(spiffe_id: str) -> str:
    """ "" when `spiffe_id` (already well formed) names a workload: an X.509-SVID's ID
    has a path (X509-SVID spec §3.1); `spiffe://<trust domain>` alone names the domain."""
    domain_and_path = spiffe_id[len(_SCHEME) :]
    return "" if "/" in domain_and_path else "names a trust domain, not a workload (no path)"
