"""Second factors: TOTP (RFC 6238) and passkeys (WebAuthn), with replay and brute-force limits."""

from __future__ import annotations
