"""The `keys:` config section: who the key custodians are and what they must prove."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from admitd.certs.principals import principal_from_text

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = ["SECTION_KEYS", "KeysConfig", "keys_config_from_fields"]

SECTION_KEYS = {"custodians", "mfa_max_age_seconds", "aaguids", "change_ttl_seconds"}


def _no_custodians() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class KeysConfig:
    """`custodians` maps admin-port certificate principals (SAN URI, DNS name or RFC 4514
    subject) to the admitd user ID whose passkey that custodian verifies with. Empty:
    nobody, so the Keys API refuses every call."""

    custodians: Mapping[str, str] = field(default_factory=_no_custodians)
    mfa_max_age_seconds: int = 300
    aaguids: frozenset[str] = frozenset()  # empty: any authenticator
    change_ttl_seconds: int = 3600


_DEFAULTS = KeysConfig()


def keys_config_from_fields(fields: Fields) -> KeysConfig:
    """`fields` reads the `keys:` mapping (allowed keys: SECTION_KEYS)."""
    return KeysConfig(
        custodians=_custodians(fields),
        mfa_max_age_seconds=fields.integer(
            "mfa_max_age_seconds", _DEFAULTS.mfa_max_age_seconds, minimum=10, maximum=3600
        ),
        aaguids=frozenset(_aaguid(fields, a) for a in fields.texts("aaguids")),
        change_ttl_seconds=fields.integer(
            "change_ttl_seconds", _DEFAULTS.change_ttl_seconds, minimum=60, maximum=7 * 86_400
        ),
    )


def _custodians(fields: Fields) -> Mapping[str, str]:
    raw = fields.raw.get("custodians") or {}
    if not isinstance(raw, Mapping):
        raise fields.error(
            "custodians",
            "expected a mapping of certificate principal to admitd user ID",
            "e.g. custodians: {'spiffe://example.org/admin/alice': alice@example.org}",
        )
    custodians: dict[str, str] = {}
    for principal, user in raw.items():
        if not isinstance(principal, str) or not principal or not isinstance(user, str) or not user:
            raise fields.error(
                "custodians",
                f"expected non-empty strings, got {principal!r}: {user!r}",
                "map each custodian's certificate principal to their admitd user ID",
            )
        custodians[principal_from_text(fields, "custodians", principal)] = user
    users = list(custodians.values())
    if len(custodians) == 1 or (custodians and len(set(users)) < 2):
        raise fields.error(
            "custodians",
            "dual control needs at least two custodians with different user IDs",
            "add a second custodian (a different person), or remove keys:",
        )
    return MappingProxyType(custodians)


def _aaguid(fields: Fields, text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise fields.error(
            "aaguids",
            f"not an AAGUID: {text!r}",
            "list authenticator AAGUIDs as UUIDs, e.g. cb69481e-8ff7-4039-93ec-0a2729a154a8",
        ) from None
