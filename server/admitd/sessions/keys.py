"""Redis key names. `{tag}` is a Redis Cluster hash tag: one user's keys share a slot."""

from __future__ import annotations

__all__ = [
    "INVALIDATION_CHANNEL",
    "REVOKED_AT",
    "RISK_STATE",
    "session_key",
    "user_factors_key",
    "user_key",
    "user_sessions_key",
]

PREFIX = "admitd"
# Every write to a user's sessions or factors publishes the user tag here, so
# each replica drops what it cached for that user.
INVALIDATION_CHANNEL = f"{PREFIX}:sessions:invalidate"
# `user_key(tag, RISK_STATE)`: the user's device-risk state hash (admitd.risk.state).
RISK_STATE = "risk"
# `user_key(tag, REVOKED_AT)`: when the user was last revoked (`revoke-user`); their IdP
# tokens issued before it are refused. Kept without expiry: a token may live long.
REVOKED_AT = "revoked_at"


def session_key(tag: str, session_id: str) -> str:
    return f"{PREFIX}:{{{tag}}}:session:{session_id}"


def user_sessions_key(tag: str) -> str:
    """SET of the user's session IDs (for listing and revoking every session)."""
    return f"{PREFIX}:{{{tag}}}:sessions"


def user_factors_key(tag: str) -> str:
    """HASH: factor name -> enrolled-at, for active factors only."""
    return f"{PREFIX}:{{{tag}}}:factors"


def user_key(tag: str, name: str) -> str:
    """Any other per-user key (TOTP secret, replay marks, rate limits, passkeys...)."""
    return f"{PREFIX}:{{{tag}}}:{name}"
