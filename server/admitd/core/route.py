"""Compiled route policies: frozen, pre-compiled, cheap to evaluate per request.

The policy loader (`admitd.policy`) builds these from YAML; the core only reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from admitd.core.context import RequestContext
from admitd.core.identity import ClientIdentity
from admitd.core.risk import RiskLevel
from admitd.core.route_index import RouteIndex

if TYPE_CHECKING:
    from admitd.core.mfa_requirement import MfaRequirement

__all__ = [
    "Condition",
    "HeaderMatch",
    "IdentityRule",
    "PolicySet",
    "Route",
    "RouteMatch",
    "SessionRequirement",
    "StepUpAt",
    "Unmatched",
    "glob_pattern",
]


class Condition(Protocol):
    """A compiled condition (CEL, in `admitd.policy.rules`) that must hold for a route."""

    @property
    def source(self) -> str: ...

    def failure(self, activation: Mapping[str, object]) -> str | None:
        """None when the condition holds, else why not (for the decision log only)."""
        ...


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A request header that must be present, equal a value, or match a regex (full match)."""

    name: str
    exact: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, headers: Mapping[str, str]) -> bool:
        value = headers.get(self.name)
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex is None or self.regex.fullmatch(value) is not None


class Unmatched(StrEnum):
    """What happens to a request that matches no route."""

    DENY = "deny"
    ANY_CERTIFICATE = "any_certificate"  # admit any verified client certificate


def glob_pattern(glob: str, *, separator: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a glob: `*` stays within one `separator`-delimited part, `**` crosses parts."""
    one_part = f"[^{re.escape(separator)}]*"
    regex = "".join(
        {"**": ".*", "*": one_part}.get(part, re.escape(part))
        for part in re.split(r"(\*\*|\*)", glob)
    )
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True, slots=True)
class IdentityRule:
    """Which verified certificate identities a route admits. Empty rule admits nobody."""

    any_identity: bool = False
    uris: tuple[re.Pattern[str], ...] = ()
    dns_names: tuple[re.Pattern[str], ...] = ()
    subjects: frozenset[str] = frozenset()
    cert_sha256: frozenset[str] = frozenset()
    spki_sha256: frozenset[str] = frozenset()

    def admits(self, identity: ClientIdentity) -> bool:
        if self.any_identity:
            return True
        return (
            identity.fingerprint_sha256 in self.cert_sha256
            or identity.spki_sha256 in self.spki_sha256
            or identity.subject in self.subjects
            or any(p.fullmatch(uri) for p in self.uris for uri in identity.uris)
            or any(p.fullmatch(name) for p in self.dns_names for name in identity.dns_names)
        )


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Host (exact or `*.` wildcard), path (exact, prefix or regex) and methods; empty = any.

    `hosts` and `host_suffixes` (".example.com" for "*.example.com") are normalised like
    `RequestContext.host_name`, which is what `matches` gets as `host`.
    """

    hosts: frozenset[str] = frozenset()
    host_suffixes: tuple[str, ...] = ()
    path_exact: str | None = None
    path_prefix: str | None = None
    path_regex: re.Pattern[str] | None = None
    methods: frozenset[str] = frozenset()
    headers: tuple[HeaderMatch, ...] = ()

    def matches(self, ctx: RequestContext, host: str, path: str) -> bool:
        if self.methods and ctx.method not in self.methods:
            return False
        if (self.hosts or self.host_suffixes) and not (
            host in self.hosts or host.endswith(self.host_suffixes)
        ):
            return False
        if self.path_exact is not None and path != self.path_exact:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        if self.path_regex is not None and self.path_regex.fullmatch(path) is None:
            return False
        return all(h.matches(ctx.headers) for h in self.headers)


def _no_routes() -> Mapping[str, Route]:
    return MappingProxyType({})


def _no_ages() -> Mapping[str, int]:
    return MappingProxyType({})


class SessionRequirement(StrEnum):
    """Whether a route consults the caller's session."""

    NONE = "none"  # certificate context only; the session store is never asked
    OPTIONAL = "optional"  # a valid session adds its identity headers; none is fine
    REQUIRED = "required"  # no valid session, no admission


class StepUpAt(StrEnum):
    """Where a browser with stale MFA proves a fresh second factor."""

    ADMITD = "admitd"  # admitd's own step-up page (TOTP, passkey)
    IDP = "idp"  # the OpenID Provider, asked for a new login with `max_age` (`oidc:`)


@dataclass(frozen=True, slots=True)
class Route:
    """`mfa_max_age` (seconds) applies to every session on the route; without it,
    privileged roles get their default from the `sessions:` config. `recovery`
    routes need an MFA verification within `sessions.recovery_max_age`."""

    name: str
    match: RouteMatch
    public: bool
    identities: IdentityRule
    source: str = ""
    session: SessionRequirement = SessionRequirement.NONE
    mfa_max_age: int | None = None
    recovery: bool = False
    mfa_max_age_by_role: Mapping[str, int] = field(default_factory=_no_ages)
    roles: frozenset[str] = frozenset()  # any one of them admits; empty = no role needed
    scopes: frozenset[str] = frozenset()  # all must be in the user's token (OAuth `scope`)
    conditions: tuple[Condition, ...] = ()  # CEL; all must hold
    upstream_headers: tuple[tuple[str, str], ...] = ()
    shadow: bool = False  # evaluate and log, never enforce (roll a rule out safely)
    # `;` in the path (RFC 3986 §3.3 parameters, e.g. `;jsessionid=`); refused unless set,
    # because servlet containers cut them off and may resolve another path than we matched.
    allow_path_parameters: bool = False
    risk_step_up_at: RiskLevel = RiskLevel.HIGH
    risk_deny_at: RiskLevel = RiskLevel.CRITICAL
    step_up: StepUpAt | None = None  # None: the deployment's default (`oidc.step_up`)
    # The same route as seen by one organisation's sessions (`organisations:` overrides).
    per_organisation: Mapping[str, Route] = field(default_factory=_no_routes)
    # Merged with the MFA rules when the engine installs the policy (core.mfa_requirement);
    # None until then, and `decide()` merges on the spot.
    mfa: MfaRequirement | None = field(default=None, compare=False)

    def for_organisation(self, organisation: str) -> Route:
        return self.per_organisation.get(organisation, self)

    @property
    def consults_session(self) -> bool:
        """Whether a Check must look the session up: the route needs one, or the
        session's organisation picks one of its variants."""
        return self.session is not SessionRequirement.NONE or bool(self.per_organisation)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """All routes, first match wins; `version` is a hash of the source files' content."""

    routes: tuple[Route, ...]
    unmatched: Unmatched = Unmatched.DENY
    require_https: bool = True
    version: str = ""
    _index: RouteIndex = field(init=False, repr=False, compare=False)
    _names: Mapping[str, Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once per load; a reload builds a new PolicySet and swaps it in whole.
        object.__setattr__(self, "_index", RouteIndex(self.routes))
        object.__setattr__(self, "_names", MappingProxyType({r.name: r for r in self.routes}))

    def route_named(self, name: str) -> Route | None:
        """The route Envoy's per-route `context_extensions: {admitd_route: NAME}` selects."""
        return self._names.get(name)

    def route_for(self, ctx: RequestContext) -> Route | None:
        # Normalised once per request (lower case, no port, no trailing dot, IDNA); policy
        # hosts are normalised the same way at load, so every spelling meets one route.
        host = ctx.host_name
        path = ctx.path_only
        for route in self._index.candidates(path):
            if route.match.matches(ctx, host, path):
                return route
        return None
