"""The MFA rules the decision applies: privileged roles and how fresh their MFA must be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DEFAULT_PRIVILEGED_ROLES", "MfaRules", "is_fresh"]

DEFAULT_PRIVILEGED_ROLES = frozenset({"admin", "finance", "analyst", "auditor"})


def _no_overrides() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class MfaRules:
    """Read from the `sessions:` config section. `mfa_max_age` maps a privileged role to its
    default max age (seconds); a route may set its own. `recovery_max_age` applies to routes
    marked `recovery`; `high_risk_mfa_max_age` to a high device-risk level."""

    privileged_roles: frozenset[str] = DEFAULT_PRIVILEGED_ROLES
    default_mfa_max_age: int = 900
    mfa_max_age: Mapping[str, int] = field(default_factory=_no_overrides)
    recovery_max_age: int = 600
    high_risk_mfa_max_age: int = 300

    def max_age_for_roles(self, roles: frozenset[str]) -> int | None:
        """The strictest default max age among the user's privileged roles; None if none."""
        ages = [
            self.mfa_max_age.get(r, self.default_mfa_max_age) for r in roles & self.privileged_roles
        ]
        return min(ages) if ages else None

    def is_privileged(self, roles: frozenset[str]) -> bool:
        return bool(roles & self.privileged_roles)

    def is_fresh_for_roles(self, roles: frozenset[str], mfa_age: float | None) -> bool:
        """Whether MFA `mfa_age` seconds old is fresh enough for these roles by default (a
        route may ask for fresher). The one rule the decision and device risk share."""
        return is_fresh(mfa_age, self.max_age_for_roles(roles) or self.default_mfa_max_age)


def is_fresh(mfa_age: float | None, max_age: float) -> bool:
    """MFA verified at most `max_age` seconds ago (never verified is never fresh)."""
    return mfa_age is not None and mfa_age <= max_age
