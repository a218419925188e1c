"""Parsers for the per-route rules beyond matching and identities (see loader.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from admitd.core.route import Condition, HeaderMatch
from admitd.fields import Fields
from admitd.policy.rules import compile_condition
from admitd.risk.model import RiskLevel

__all__ = [
    "RISK_KEYS",
    "condition",
    "header_matches",
    "mfa_max_age_by_role",
    "regex",
    "risk_thresholds",
    "upstream_headers",
]

RISK_KEYS = {"step_up_at", "deny_at"}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # RFC 9110 token


def regex(fields: Fields, key: str) -> re.Pattern[str]:
    try:
        return re.compile(fields.text(key))
    except re.error as exc:
        raise fields.error(key, f"invalid regular expression: {exc}") from None


def mfa_max_age_by_role(fields: Fields) -> Mapping[str, int]:
    """`mfa_max_age: {default: 900, admin: 300}`: ages per role (an int applies to everyone)."""
    if not isinstance(fields.raw.get("mfa_max_age"), Mapping):
        return MappingProxyType({})
    raw = fields.raw["mfa_max_age"]
    assert isinstance(raw, Mapping)
    ages = fields.sub("mfa_max_age", {str(role) for role in raw})
    return MappingProxyType(
        {role: ages.integer(role, 0, minimum=1, maximum=86_400) for role in ages.raw}
    )


def risk_thresholds(route: Fields) -> tuple[RiskLevel, RiskLevel]:
    fields = route.sub("risk", RISK_KEYS)
    levels = tuple(RiskLevel)
    step_up = RiskLevel(fields.choice("step_up_at", "high", levels))
    deny = RiskLevel(fields.choice("deny_at", "critical", levels))
    if deny.rank < step_up.rank:
        raise fields.error(
            "deny_at",
            f"{deny.value} is below step_up_at ({step_up.value})",
            "deny_at >= step_up_at",
        )
    return step_up, deny


def condition(fields: Fields, source: str) -> Condition:
    try:
        return compile_condition(source)
    except ValueError as exc:
        raise fields.error(
            "conditions", f"invalid CEL in {source!r}: {str(exc).splitlines()[0]}"
        ) from None


def upstream_headers(route: Fields) -> tuple[tuple[str, str], ...]:
    raw = route.raw.get("upstream_headers") or {}
    if not isinstance(raw, Mapping):
        raise route.error("upstream_headers", "expected a mapping of header name to value")
    headers = []
    for name, value in raw.items():
        lowered = str(name).lower()
        if not _HEADER_NAME.fullmatch(lowered) or lowered.startswith("x-admitd-"):
            raise route.error(
                "upstream_headers", f"bad header name {name!r}", "a token; x-admitd-* is reserved"
            )
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise route.error("upstream_headers", f"value of {name!r} must be a one-line string")
        headers.append((lowered, value))
    return tuple(headers)


def header_matches(match: Fields) -> tuple[HeaderMatch, ...]:
    """`headers: {x-tenant: acme, x-env: {regex: "prod|stage"}, x-debug: {present: true}}`."""
    raw = match.raw.get("headers") or {}
    if not isinstance(raw, Mapping):
        raise match.error(
            "headers", "expected a mapping of header name to a value or {regex|present}"
        )
    found = []
    for name, rule in raw.items():
        lowered = str(name).lower()
        if isinstance(rule, str):
            found.append(HeaderMatch(lowered, exact=rule))
            continue
        spec = match.sub("headers", set(raw)).sub(str(name), {"regex", "present"})
        pattern = regex(spec, "regex") if spec.has("regex") else None
        if pattern is None and not spec.flag("present", False):
            raise spec.error("present", "say `present: true` or give a `regex`")
        found.append(HeaderMatch(lowered, regex=pattern))
    return tuple(found)
