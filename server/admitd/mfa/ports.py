"""The contracts between the MFA factors, the step-up web app and the admin API.

`admitd.mfa.totp` implements `TotpFactor`; `admitd.mfa.passkeys` implements
`PasskeyFactor`; `admitd.web` and `admitd.admin` only use these Protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["MfaResult", "PasskeyFactor", "TotpEnrolment", "TotpFactor"]


class MfaResult(StrEnum):
    """Outcome of one verification attempt (also a metric label and audit reason)."""

    OK = "ok"
    INVALID = "invalid"  # wrong code / bad assertion
    REPLAYED = "replayed"  # a TOTP code already accepted for this user
    LOCKED_OUT = "locked_out"  # too many failures; try again later
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    """What the user needs to add the account to an authenticator app."""

    provisioning_uri: str  # otpauth://totp/...
    qr_png_base64: str  # the same URI as a QR code (PNG, base64)


class TotpFactor(Protocol):
    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        """Create a pending secret (sealed at rest); not active until confirmed."""

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        """Activate the pending secret if `code` is valid for it."""

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        """Check a code: ±1 step of drift, single use per user, rate-limited."""


class PasskeyFactor(Protocol):
    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        """PublicKeyCredentialCreationOptions as JSON; the challenge is stored with a short TTL."""

    async def register(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult: ...

    async def authentication_options(self, user_id: str, now: float) -> str:
        """PublicKeyCredentialRequestOptions as JSON (user verification required)."""

    async def authenticate(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult: ...
