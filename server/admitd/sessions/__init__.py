"""Sessions: who the caller is, their roles, and when they last verified a second factor.

State lives in Redis (`RedisSessionStore`) so every admitd replica agrees; an
in-memory store (`MemorySessionStore`) serves a single development process.
"""

from __future__ import annotations

from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import SessionRef, new_session_token, parse_session_token, user_tag

__all__ = [
    "MfaMethod",
    "Session",
    "SessionRef",
    "SessionStore",
    "new_session_token",
    "parse_session_token",
    "user_tag",
]
