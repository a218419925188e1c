"""The `sessions:` config section: the session store's settings, and the core's MFA rules.

One YAML section, two objects: `SessionsConfig` (cookie, lifetimes, cache) for the session
adapter and the admin API, `MfaRules` (privileged roles, MFA max ages) for the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from admitd.core.mfa_rules import DEFAULT_PRIVILEGED_ROLES, MfaRules

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = ["SECTION_KEYS", "SessionsConfig", "mfa_rules_from_fields", "sessions_config_from_fields"]

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
_DEFAULTS = MfaRules()
_MAX_AGE = 86_400


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """How sessions are carried, how long they live, how long a replica may cache one."""

    cookie_name: str = "__Host-admitd_session"
    idle_timeout: int = 1800
    absolute_timeout: int = 12 * 3600
    cache_ttl: float = 5.0


def sessions_config_from_fields(fields: Fields) -> SessionsConfig:
    defaults = SessionsConfig()
    cookie = fields.text("cookie_name", defaults.cookie_name)
    if not cookie.startswith(("__Host-", "__Secure-")):
        raise fields.error(
            "cookie_name",
            "must start with __Host- or __Secure-",
            "a prefixed cookie cannot be set over plain HTTP",
        )
    return SessionsConfig(
        cookie_name=cookie,
        idle_timeout=fields.integer(
            "idle_timeout", defaults.idle_timeout, minimum=60, maximum=7 * 86_400
        ),
        absolute_timeout=fields.integer(
            "absolute_timeout", defaults.absolute_timeout, minimum=60, maximum=90 * 86_400
        ),
        cache_ttl=fields.number("cache_ttl", defaults.cache_ttl),
    )


def mfa_rules_from_fields(fields: Fields) -> MfaRules:
    privileged = (
        fields.texts("privileged_roles")
        if fields.has("privileged_roles")
        else sorted(DEFAULT_PRIVILEGED_ROLES)
    )
    overrides = fields.sub("mfa_max_age", set(privileged))
    ages = {role: overrides.integer(role, 0, minimum=1, maximum=_MAX_AGE) for role in overrides.raw}
    return MfaRules(
        privileged_roles=frozenset(privileged),
        default_mfa_max_age=_age(fields, "default_mfa_max_age", _DEFAULTS.default_mfa_max_age),
        mfa_max_age=MappingProxyType(ages),
        recovery_max_age=_age(fields, "recovery_max_age", _DEFAULTS.recovery_max_age),
        high_risk_mfa_max_age=_age(
            fields, "high_risk_mfa_max_age", _DEFAULTS.high_risk_mfa_max_age
        ),
    )


def _age(fields: Fields, key: str, default: int) -> int:
    return fields.integer(key, default, minimum=1, maximum=_MAX_AGE)
