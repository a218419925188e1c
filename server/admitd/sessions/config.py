"""The `sessions:` config section: lifetimes, privileged roles, MFA max ages, cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from admitd.fields import Fields

__all__ = ["SessionsConfig", "sessions_config_from_fields"]

SECTION_KEYS = {
    "cookie_name",
    "idle_timeout",
    "absolute_timeout",
    "privileged_roles",
    "mfa_max_age",
    "default_mfa_max_age",
    "recovery_max_age",
    "cache_ttl",
    "high_risk_mfa_max_age",
}
_DEFAULT_PRIVILEGED = ("admin", "finance", "analyst", "auditor")


def _no_overrides() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """`mfa_max_age` maps a privileged role to its default max age (seconds); a route may
    set its own. `recovery_max_age` applies to routes marked `recovery`."""

    cookie_name: str = "__Host-admitd_session"
    idle_timeout: int = 1800
    absolute_timeout: int = 12 * 3600
    privileged_roles: frozenset[str] = frozenset(_DEFAULT_PRIVILEGED)
    default_mfa_max_age: int = 900
    mfa_max_age: Mapping[str, int] = field(default_factory=_no_overrides)
    recovery_max_age: int = 600
    cache_ttl: float = 5.0
    high_risk_mfa_max_age: int = 300  # a high device-risk level needs MFA at least this fresh

    def max_age_for_roles(self, roles: frozenset[str]) -> int | None:
        """The strictest default max age among the user's privileged roles; None if none."""
        ages = [
            self.mfa_max_age.get(r, self.default_mfa_max_age) for r in roles & self.privileged_roles
        ]
        return min(ages) if ages else None


def sessions_config_from_fields(fields: Fields) -> SessionsConfig:
    privileged = (
        fields.texts("privileged_roles")
        if fields.has("privileged_roles")
        else list(_DEFAULT_PRIVILEGED)
    )
    overrides = fields.sub("mfa_max_age", set(privileged))
    ages = {role: overrides.integer(role, 0, minimum=1, maximum=86_400) for role in overrides.raw}
    cookie = fields.text("cookie_name", "__Host-admitd_session")
    if cookie.startswith("__Host-") is False and cookie.startswith("__Secure-") is False:
        raise fields.error(
            "cookie_name",
            "must start with __Host- or __Secure-",
            "a prefixed cookie cannot be set over plain HTTP",
        )
    return SessionsConfig(
        cookie_name=cookie,
        idle_timeout=fields.integer("idle_timeout", 1800, minimum=60, maximum=7 * 86_400),
        absolute_timeout=fields.integer(
            "absolute_timeout", 12 * 3600, minimum=60, maximum=90 * 86_400
        ),
        privileged_roles=frozenset(privileged),
        default_mfa_max_age=fields.integer("default_mfa_max_age", 900, minimum=1, maximum=86_400),
        mfa_max_age=MappingProxyType(ages),
        recovery_max_age=fields.integer("recovery_max_age", 600, minimum=1, maximum=86_400),
        cache_ttl=fields.number("cache_ttl", 5.0),
        high_risk_mfa_max_age=fields.integer(
            "high_risk_mfa_max_age", 300, minimum=1, maximum=86_400
        ),
    )
