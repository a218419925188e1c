"""Read `policies/*.yaml` into a PolicySet; any problem names the file, line, key and fix.

A policy file:

    unmatched: deny            # or any_certificate; these two globals may be
    require_https: true        # set by one file only (a load error otherwise)
    routes:
      - name: payments-api
        match:
          hosts: [api.example.com, "*.internal.example.com"]
          path_prefix: /payments/      # or path_exact / path_regex
          methods: [GET, POST]
        public: false
        session: required              # none (default), optional, required
        mfa_max_age: 900               # seconds; implies session: required
        recovery: false                # MFA within sessions.recovery_max_age
        identities:                    # or the word `any`
          spiffe: ["spiffe://example.org/ns/payments/sa/*"]
          dns: ["*.clients.example.com"]
          subjects: ["CN=batch,O=Example"]
          cert_sha256: ["<64 hex>"]
          spki_sha256: ["<64 hex>"]
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from admitd.core.context import host_from_authority, host_name
from admitd.core.route import (
    IdentityRule,
    PolicySet,
    Route,
    RouteMatch,
    SessionRequirement,
    StepUpAt,
    Unmatched,
    glob_pattern,
)
from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.policy import route_parts
from admitd.yamlsource import KeyPath, YamlDocument, load_yaml

__all__ = ["load_policies", "policy_set_from_documents"]

log = logging.getLogger(__name__)

GLOBAL_KEYS = {"unmatched", "require_https"}  # one file only: they apply to every route
FILE_KEYS = GLOBAL_KEYS | {"defaults", "routes"}
ROUTE_KEYS = {
    "name",
    "match",
    "public",
    "identities",
    "session",
    "mfa_max_age",
    "recovery",
    "roles",
    "scopes",
    "conditions",
    "upstream_headers",
    "shadow",
    "risk",
    "organisations",
    "allow_path_parameters",
    "step_up",
}
DEFAULTABLE_KEYS = ROUTE_KEYS - {"name", "match", "organisations"}
# What an organisation may change on a route (its identity and match stay the route's;
# whether `;` is safe depends on the upstream's path parser, not on who is asking).
ORG_OVERRIDE_KEYS = DEFAULTABLE_KEYS - {"public", "identities", "allow_path_parameters"}
MATCH_KEYS = {"hosts", "path_exact", "path_prefix", "path_regex", "methods", "headers"}

IDENTITY_KEYS = {"spiffe", "uris", "dns", "subjects", "cert_sha256", "spki_sha256"}
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_policies(path: Path) -> PolicySet:
    """Load a policy file, or every `*.yaml`/`*.yml` file of a directory (sorted by name)."""
    files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    files = [f for f in files if not f.name.endswith((".test.yaml", ".test.yml"))]
    if not files:
        raise ConfigError(
            "no policy files found", file=str(path), fix="add a *.yaml file with `routes:`"
        )
    return policy_set_from_documents([load_yaml(f) for f in files])


def policy_set_from_documents(docs: list[YamlDocument]) -> PolicySet:
    """Every document's routes, in order; the globals from the one document that sets them."""
    routes: list[Route] = []
    digest = hashlib.sha256()
    for doc in docs:
        fields = Fields(doc, (), doc.data, FILE_KEYS)
        defaults = fields.sub("defaults", DEFAULTABLE_KEYS).raw
        routes += [
            _route(doc, path, _with_defaults(raw, defaults))
            for path, raw in fields.mapping_list("routes")
        ]
        digest.update(repr(doc.data).encode())
    unmatched, require_https = _globals(docs)
    if not routes:
        # Nothing would match, so everything is denied or (any_certificate) admitted:
        # almost surely a truncated deploy, not an intent. Refuse it (and keep the old set).
        raise ConfigError(
            "the policy set has no routes",
            file=", ".join(doc.file for doc in docs) or None,
            fix="add at least one route under `routes:`",
        )
    _refuse_duplicate_names(routes, docs)
    return PolicySet(tuple(routes), unmatched, require_https, digest.hexdigest()[:12])


def _globals(docs: list[YamlDocument]) -> tuple[Unmatched, bool]:
    """`unmatched` and `require_https` apply to every route of every file, so one file
    owns them: otherwise a later file could silently loosen them for all routes."""
    owners = [doc for doc in docs if isinstance(doc.data, Mapping) and GLOBAL_KEYS & set(doc.data)]
    if not owners:
        return Unmatched.DENY, True
    if len(owners) > 1:
        first, second = owners[0], owners[1]
        assert isinstance(second.data, Mapping)
        key = min(GLOBAL_KEYS & set(second.data))
        raise second.error(
            (key,),
            f"only one policy file may set {' or '.join(sorted(GLOBAL_KEYS))};"
            f" {first.file} already does",
            f"set the globals in {first.file} only and remove them here",
        )
    fields = Fields(owners[0], (), owners[0].data, FILE_KEYS)
    unmatched = Unmatched(fields.choice("unmatched", "deny", tuple(Unmatched)))
    return unmatched, fields.flag("require_https", True)


def _route(doc: YamlDocument, path: KeyPath, raw: object) -> Route:
    route = _single_route(doc, path, raw)
    fields = Fields(doc, path, raw, ROUTE_KEYS)
    raw_overrides = fields.raw.get("organisations") or {}
    names = {str(k) for k in raw_overrides} if isinstance(raw_overrides, Mapping) else set()
    overrides = fields.sub("organisations", names)
    variants = {}
    for organisation in overrides.raw:
        changes = Fields(
            doc, (*overrides.path, organisation), overrides.raw[organisation], ORG_OVERRIDE_KEYS
        )
        merged = {k: v for k, v in fields.raw.items() if k != "organisations"} | dict(changes.raw)
        variants[organisation] = _single_route(doc, path, merged)
    if not variants:
        return route
    _check_override_scope(route, overrides)
    return replace(route, per_organisation=MappingProxyType(variants))


def _check_override_scope(route: Route, overrides: Fields) -> None:
    """The organisation comes from the session, so a caller without a live one gets the
    route itself: on a route that admits such callers, an override binds only those who
    present their session. Allowed (the variant is enforced on every session of that
    organisation), but said at load so nobody mistakes it for a gate on everyone."""
    if "" in overrides.raw:
        raise overrides.doc.error(overrides.path, "an organisation name is empty")
    if route.session is not SessionRequirement.REQUIRED:
        log.warning(
            "%s: route %r is `session: %s`, so its organisation overrides apply to callers"
            " who present a session of that organisation; a caller without one gets the"
            " route itself (set `session: required` to judge everyone by a variant)",
            overrides.doc.file,
            route.name,
            route.session.value,
        )


def _single_route(doc: YamlDocument, path: KeyPath, raw: object) -> Route:
    fields = Fields(doc, path, raw, ROUTE_KEYS)  # `organisations` is handled by _route
    name = fields.text("name")
    public = fields.flag("public", False)
    if public and fields.has("identities"):
        raise fields.error(
            "identities", "a public route admits everyone", "remove `identities` or `public`"
        )
    if not public and not fields.has("identities"):
        raise fields.error(
            "identities",
            "required for a non-public route",
            "list allowed identities, or write `identities: any`",
        )
    identities = IdentityRule() if public else _identities(fields)
    match = _match(fields.sub("match", MATCH_KEYS))
    session, mfa_max_age, recovery = _session_rules(fields, public)
    by_role = route_parts.mfa_max_age_by_role(fields)
    roles = frozenset(fields.texts("roles"))
    if public and roles:
        raise fields.error(
            "roles", "a public route has no session, so no roles", "remove `public` or `roles`"
        )
    scopes = frozenset(fields.texts("scopes"))
    if public and scopes:
        raise fields.error(
            "scopes", "a public route has no token, so no scopes", "remove `public` or `scopes`"
        )
    step_up_at, deny_at = route_parts.risk_thresholds(fields)
    needs_user = bool(roles or scopes) and session is SessionRequirement.NONE
    return Route(
        name,
        match,
        public,
        identities,
        doc.file,
        SessionRequirement.REQUIRED if needs_user else session,
        mfa_max_age,
        recovery,
        mfa_max_age_by_role=by_role,
        roles=roles,
        scopes=scopes,
        conditions=tuple(route_parts.condition(fields, c) for c in fields.texts("conditions")),
        upstream_headers=route_parts.upstream_headers(fields),
        shadow=fields.flag("shadow", False),
        allow_path_parameters=fields.flag("allow_path_parameters", False),
        risk_step_up_at=step_up_at,
        risk_deny_at=deny_at,
        step_up=_step_up(fields),
    )


def _step_up(fields: Fields) -> StepUpAt | None:
    if not fields.has("step_up"):
        return None
    return StepUpAt(fields.choice("step_up", StepUpAt.ADMITD.value, tuple(StepUpAt)))


def _with_defaults(raw: object, defaults: Mapping[str, object]) -> object:
    """A file's `defaults:` apply to each of its routes; a route's own keys win."""
    return {**defaults, **raw} if isinstance(raw, Mapping) else raw


def _session_rules(fields: Fields, public: bool) -> tuple[SessionRequirement, int | None, bool]:
    recovery = fields.flag("recovery", False)
    per_role = isinstance(fields.raw.get("mfa_max_age"), Mapping)
    mfa_max_age = (
        fields.integer("mfa_max_age", 0, minimum=1, maximum=86_400)
        if fields.has("mfa_max_age") and not per_role
        else None
    )
    needs_session = recovery or fields.has("mfa_max_age")
    default = SessionRequirement.REQUIRED if needs_session else SessionRequirement.NONE
    session = SessionRequirement(fields.choice("session", default.value, tuple(SessionRequirement)))
    if needs_session and session is not SessionRequirement.REQUIRED:
        raise fields.error(
            "session", "`mfa_max_age` and `recovery` need `session: required`", "remove `session`"
        )
    if public and session is not SessionRequirement.NONE:
        raise fields.error(
            "session", "a public route has no session requirement", "remove `public` or `session`"
        )
    return session, mfa_max_age, recovery


def _match(fields: Fields) -> RouteMatch:
    paths = [k for k in ("path_exact", "path_prefix", "path_regex") if fields.has(k)]
    if len(paths) > 1:
        raise fields.error(paths[1], "only one of path_exact, path_prefix, path_regex per route")
    for key in ("path_exact", "path_prefix"):
        if fields.has(key) and not fields.text(key).startswith("/"):
            raise fields.error(key, "a path must start with '/'")
    hosts = [_host(fields, h) for h in fields.texts("hosts")]
    methods = [m.upper() for m in fields.texts("methods")]
    for method in methods:
        if method not in _METHODS:
            raise fields.error(
                "methods", f"unknown method {method!r}", f"one of: {', '.join(sorted(_METHODS))}"
            )
    return RouteMatch(
        headers=route_parts.header_matches(fields),
        hosts=frozenset(h for h in hosts if not h.startswith(".")),
        host_suffixes=tuple(h for h in hosts if h.startswith(".")),
        path_exact=fields.optional_text("path_exact"),
        path_prefix=fields.optional_text("path_prefix"),
        path_regex=route_parts.regex(fields, "path_regex") if fields.has("path_regex") else None,
        methods=frozenset(methods),
    )


def _host(fields: Fields, written: str) -> str:
    """Normalised as request hosts are (RequestContext.host_name); `*.x` becomes `.x`."""
    wildcard = written.startswith("*.")
    name = host_name(written[2:] if wildcard else written)
    if name:
        return "." + name if wildcard else name
    fix = (
        "remove the port: a request's port is ignored"
        if host_from_authority(written)
        else "an RFC 1123 host name, IPv4 or [IPv6], or `*.` and a name; no `hosts` = any host"
    )
    raise fields.error("hosts", f"not a host name: {written!r}", fix)


def _identities(route: Fields) -> IdentityRule:
    if route.raw.get("identities") == "any":
        return IdentityRule(any_identity=True)
    fields = route.sub("identities", IDENTITY_KEYS)
    rule = IdentityRule(
        uris=tuple(
            glob_pattern(g, separator="/") for g in fields.texts("spiffe") + fields.texts("uris")
        ),
        dns_names=tuple(
            glob_pattern(g, separator=".", ignore_case=True) for g in fields.texts("dns")
        ),
        subjects=frozenset(_subject(fields, s) for s in fields.texts("subjects")),
        cert_sha256=_fingerprints(fields, "cert_sha256"),
        spki_sha256=_fingerprints(fields, "spki_sha256"),
    )
    if rule == IdentityRule():
        raise route.error(
            "identities",
            "lists no identity",
            "add spiffe/dns/subjects/cert_sha256/spki_sha256, or `any`",
        )
    return rule


def _subject(fields: Fields, subject: str) -> str:
    # Normalise through cryptography so "CN=a, O=b" and "CN=a,O=b" compare equal.
    try:
        compact = re.sub(r"(?<!\\)([,+=])\s+", r"\1", subject.strip())
        return x509.Name.from_rfc4514_string(compact).rfc4514_string()
    except ValueError:
        raise fields.error(
            "subjects", f"not an RFC 4514 name: {subject!r}", "e.g. 'CN=batch,O=Example'"
        ) from None


def _fingerprints(fields: Fields, key: str) -> frozenset[str]:
    values = {v.lower().replace(":", "") for v in fields.texts(key)}
    for value in values:
        if not _HEX64.fullmatch(value):
            raise fields.error(
                key, f"not a SHA-256 hex digest: {value!r}", "64 hex digits, colons allowed"
            )
    return frozenset(values)


def _refuse_duplicate_names(routes: list[Route], docs: list[YamlDocument]) -> None:
    seen: dict[str, str] = {}
    for route in routes:
        if route.name in seen:
            raise ConfigError(
                f"route name {route.name!r} is also used in {seen[route.name]}",
                file=route.source,
                key="routes.name",
                fix="give every route a unique name (it labels logs and metrics)",
            )
        seen[route.name] = route.source
