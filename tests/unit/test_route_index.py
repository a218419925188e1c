"""The route index picks exactly the route a linear first-match scan would."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from admitd.core.route import IdentityRule, PolicySet, Route, RouteMatch
from tests.unit.helpers import request

_segment = st.sampled_from(["api", "admin", "a", "b", "x1", ""])
_path = st.lists(_segment, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))


@st.composite
def routes(draw: st.DrawFn) -> list[Route]:
    found = []
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["prefix", "exact", "regex", "any"]))
        path = draw(_path)
        match = {
            "prefix": RouteMatch(path_prefix=path),
            "exact": RouteMatch(path_exact=path),
            "regex": RouteMatch(path_regex=re.compile(re.escape(path) + ".*")),
            "any": RouteMatch(),
        }[kind]
        found.append(Route(f"r{n}", match, public=True, identities=IdentityRule()))
    return found


def linear(policy: PolicySet, path: str) -> str | None:
    ctx = request(path)
    for route in policy.routes:
        if route.match.matches(ctx, "api.test", ctx.path_only):
            return route.name
    return None


@settings(max_examples=300)
@given(routes(), _path)
def test_index_matches_linear_scan(candidates: list[Route], path: str) -> None:
    policy = PolicySet(tuple(candidates))
    chosen = policy.route_for(request(path))
    assert (chosen.name if chosen else None) == linear(policy, path)
