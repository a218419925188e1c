"""Route policies: which routes exist, which are public, which certificate identities they admit."""

from __future__ import annotations

from admitd.policy.loader import load_policies
from admitd.policy.model import IdentityRule, PolicySet, Route, RouteMatch, Unmatched

__all__ = ["IdentityRule", "PolicySet", "Route", "RouteMatch", "Unmatched", "load_policies"]
