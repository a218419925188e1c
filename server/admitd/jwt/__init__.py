"""JWT bearer tokens from the organisation's IdP: config, keys, verification, identity source."""

from __future__ import annotations

from admitd.jwt.config import SECTION_KEYS, IssuerConfig, JwtConfig, jwt_config_from_fields
from admitd.jwt.source import JwtIdentity

__all__ = ["SECTION_KEYS", "IssuerConfig", "JwtConfig", "JwtIdentity", "jwt_config_from_fields"]
