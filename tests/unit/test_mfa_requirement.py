"""A route's MFA ages merged once equal the ages the rules give per request, for any roles."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from admitd.core.mfa_requirement import mfa_requirement, with_mfa_requirements
from admitd.core.mfa_rules import MfaRules
from admitd.core.route import IdentityRule, PolicySet, Route, RouteMatch

ROLES = ("admin", "finance", "viewer", "auditor", "default")
ages = st.sampled_from([30, 60, 300, 900, 3600])


def per_request(route: Route, roles: frozenset[str], rules: MfaRules) -> int | None:
    """The merge as the README states it, evaluated for one user (the specification)."""
    by_role = route.mfa_max_age_by_role
    recovery = [rules.recovery_max_age] if route.recovery else []
    if by_role:
        found = [by_role[r] for r in roles if r in by_role and r != "default"]
        if not found and "default" in by_role:
            found = [by_role["default"]]
        return min(found + recovery) if found + recovery else None
    if route.mfa_max_age is not None:
        return min([route.mfa_max_age, *recovery])
    privileged = [
        rules.mfa_max_age.get(r, rules.default_mfa_max_age) for r in roles & rules.privileged_roles
    ]
    return min(privileged + recovery) if privileged + recovery else None


routes = st.builds(
    lambda table, single, recovery: Route(
        "r", RouteMatch(), public=False, identities=IdentityRule(any_identity=True),
        mfa_max_age=single, recovery=recovery, mfa_max_age_by_role=MappingProxyType(table),
    ),
    st.dictionaries(st.sampled_from(ROLES), ages, max_size=3),
    st.none() | ages,
    st.booleans(),
)  # fmt: skip
rules = st.builds(
    lambda privileged, overrides, default, recovery: MfaRules(
        privileged_roles=frozenset(privileged),
        default_mfa_max_age=default,
        mfa_max_age=MappingProxyType({r: a for r, a in overrides.items() if r in privileged}),
        recovery_max_age=recovery,
    ),
    st.sets(st.sampled_from(ROLES[:4]), max_size=3),
    st.dictionaries(st.sampled_from(ROLES[:4]), ages, max_size=2),
    ages,
    ages,
)


@given(route=routes, rules=rules, roles=st.frozensets(st.sampled_from(ROLES[:4])))
def test_the_merged_requirement_gives_every_user_the_same_age(
    route: Route, rules: MfaRules, roles: frozenset[str]
) -> None:
    assert mfa_requirement(route, rules).max_age_for(roles) == per_request(route, roles, rules)


def test_installing_a_policy_merges_every_route_and_organisation_variant() -> None:
    base = Route("r", RouteMatch(), public=False, identities=IdentityRule(any_identity=True))
    variant = replace(base, mfa_max_age=60)
    policy = PolicySet((replace(base, per_organisation=MappingProxyType({"acme": variant})),))
    (merged,) = with_mfa_requirements(policy, MfaRules()).routes
    assert merged.mfa is not None and merged.mfa.max_age_for(frozenset({"admin"})) == 900
    acme = merged.for_organisation("acme").mfa
    assert acme is not None and acme.max_age_for(frozenset({"viewer"})) == 60
