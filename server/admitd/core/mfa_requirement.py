"""A route's MFA ages merged with the MFA rules once, when a policy is installed, not per Check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from admitd.core.mfa_rules import MfaRules
from admitd.core.route import PolicySet, Route

__all__ = ["MfaRequirement", "mfa_requirement", "with_mfa_requirements"]


def _no_ages() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MfaRequirement:
    """How fresh a user's MFA must be on one route: by role (the strictest of a user's roles
    wins), else `default`; None means the route asks for no MFA from that user."""

    by_role: Mapping[str, int] = field(default_factory=_no_ages)
    default: int | None = None

    def max_age_for(self, roles: frozenset[str]) -> int | None:
        ages = [age for role, age in self.by_role.items() if role in roles]
        return min(ages) if ages else self.default


def mfa_requirement(route: Route, rules: MfaRules) -> MfaRequirement:
    """The route's own table (`mfa_max_age` by role, with `default`), or its single
    `mfa_max_age`, or else the rules' defaults for privileged roles; a `recovery` route
    caps every age at `rules.recovery_max_age`."""
    cap = rules.recovery_max_age if route.recovery else None
    if route.mfa_max_age_by_role:
        table = dict(route.mfa_max_age_by_role)
        default = table.pop("default", None)
        return MfaRequirement(_capped(table, cap), _min(default, cap))
    if route.mfa_max_age is not None:
        return MfaRequirement(default=_min(route.mfa_max_age, cap))
    by_role = {
        role: rules.mfa_max_age.get(role, rules.default_mfa_max_age)
        for role in rules.privileged_roles
    }
    return MfaRequirement(_capped(by_role, cap), cap)


def with_mfa_requirements(policy: PolicySet, rules: MfaRules) -> PolicySet:
    """The same policy with every route's (and organisation variant's) requirement merged."""
    return replace(policy, routes=tuple(_compiled(route, rules) for route in policy.routes))


def _compiled(route: Route, rules: MfaRules) -> Route:
    variants = {org: _compiled(variant, rules) for org, variant in route.per_organisation.items()}
    return replace(
        route, mfa=mfa_requirement(route, rules), per_organisation=MappingProxyType(variants)
    )


def _capped(ages: dict[str, int], cap: int | None) -> Mapping[str, int]:
    return MappingProxyType(
        {role: min(age, cap) if cap is not None else age for role, age in ages.items()}
    )


def _min(age: int | None, cap: int | None) -> int | None:
    present = [a for a in (age, cap) if a is not None]
    return min(present) if present else None
