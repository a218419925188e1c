"""Route policies: which routes exist, which are public, which certificate identities they admit."""

from __future__ import annotations

from admitd.core.route import IdentityRule, PolicySet, Route, RouteMatch, Unmatched
from admitd.policy.loader import load_policies

__all__ = ["IdentityRule", "PolicySet", "Route", "RouteMatch", "Unmatched", "load_policies"]
