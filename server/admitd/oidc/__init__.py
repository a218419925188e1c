"""OpenID Connect browser sign-in: the IdP's code flow ends in an admitd session."""

from __future__ import annotations

from admitd.oidc.config import CALLBACK_PATH, SECTION_KEYS, OidcConfig, oidc_config_from_fields
from admitd.oidc.handlers import LOGOUT_PATH, OIDC_PREFIX, OidcRoutes, add_oidc_routes
from admitd.oidc.provider import CallbackRefused, OidcProvider, ProviderUnavailable

__all__ = [
    "CALLBACK_PATH",
    "LOGOUT_PATH",
    "OIDC_PREFIX",
    "SECTION_KEYS",
    "CallbackRefused",
    "OidcConfig",
    "OidcProvider",
    "OidcRoutes",
    "ProviderUnavailable",
    "add_oidc_routes",
    "oidc_config_from_fields",
]
