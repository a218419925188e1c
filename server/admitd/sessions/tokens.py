"""Session tokens: `<user tag>.<256 random bits>`; the store only ever sees their SHA-256.

The user tag (a hash of the user ID) is in the token so the session's Redis key
can carry the user's hash tag, keeping one user's keys on one Redis Cluster slot,
while the token still reveals nothing about who the user is.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

__all__ = ["SessionRef", "is_session_token", "new_session_token", "parse_session_token", "user_tag"]

_TOKEN = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class SessionRef:
    tag: str
    session_id: str  # SHA-256 hex of the whole token


def user_tag(user_id: str) -> str:
    return hashlib.sha256(b"admitd-user\x00" + user_id.encode()).hexdigest()[:16]


def new_session_token(user_id: str) -> tuple[str, SessionRef]:
    """A fresh token for the client, and what the store keys it by."""
    token = f"{user_tag(user_id)}.{secrets.token_urlsafe(32)}"
    parsed = parse_session_token(token)
    assert parsed is not None
    return token, parsed


def is_session_token(token: str) -> bool:
    """Shaped like a token admitd issues (no hashing: for stripping credentials)."""
    return _TOKEN.fullmatch(token) is not None


def parse_session_token(token: str) -> SessionRef | None:
    """None when `token` cannot be one admitd issued (checked before any store lookup)."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return SessionRef(match.group(1), hashlib.sha256(token.encode()).hexdigest())
