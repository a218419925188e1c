"""The `mfa:` config section: TOTP issuer name, failure limits, lockout and back-off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = ["SECTION_KEYS", "MfaConfig", "mfa_config_from_fields"]

SECTION_KEYS = {
    "totp_issuer",
    "max_failures",
    "lockout_seconds",
    "backoff_base_seconds",
    "enrolment_ttl_seconds",
}


@dataclass(frozen=True, slots=True)
class MfaConfig:
    """After the n-th consecutive failure (n < `max_failures`) the next attempt waits
    `backoff_base_seconds * 2**(n-1)` (at most `lockout_seconds`); the `max_failures`-th
    locks the user out for `lockout_seconds`. A pending TOTP secret lives
    `enrolment_ttl_seconds`."""

    totp_issuer: str = "admitd"
    max_failures: int = 5
    lockout_seconds: int = 900
    backoff_base_seconds: float = 1.0
    enrolment_ttl_seconds: int = 600


def mfa_config_from_fields(fields: Fields) -> MfaConfig:
    """`fields` reads the `mfa:` mapping (allowed keys: SECTION_KEYS)."""
    issuer = fields.text("totp_issuer", "admitd")
    if ":" in issuer:
        # RFC: the otpauth label is "issuer:account"; a colon in the issuer breaks it.
        raise fields.error("totp_issuer", "must not contain ':'", "e.g. admitd or Example Corp")
    return MfaConfig(
        totp_issuer=issuer,
        max_failures=fields.integer("max_failures", 5, minimum=1, maximum=100),
        lockout_seconds=fields.integer("lockout_seconds", 900, minimum=1, maximum=7 * 86_400),
        backoff_base_seconds=fields.number("backoff_base_seconds", 1.0),
        enrolment_ttl_seconds=fields.integer(
            "enrolment_ttl_seconds", 600, minimum=60, maximum=86_400
        ),
    )
