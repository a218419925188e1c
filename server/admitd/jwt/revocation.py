"""Revoked users' tokens: a JWT issued before its user's `revoke-user` time is refused."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["RevocationTimes", "is_revoked", "issued_at"]


class RevocationTimes(Protocol):
    """The session store's record of `revoke-user` (cached, kept honest by its pub/sub feed).
    May raise `StoreUnavailable`: the caller fails closed."""

    async def revoked_at(self, user_id: str) -> float | None: ...


def issued_at(claims: Mapping[str, object]) -> float | None:
    """The token's `iat`, or None when it has none (or not a number)."""
    value = claims.get("iat")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def is_revoked(issued: float | None, revoked_at: float | None) -> bool:
    """Whether a token issued at `issued` predates the user's revocation. `iat` is whole
    seconds, so a token from the revocation's own second is refused too (fail closed), as is
    one with no `iat` for a user who was ever revoked (it cannot show it came after)."""
    if revoked_at is None:
        return False
    return issued is None or issued < revoked_at
