"""Which tokens a revoke-user refuses: those issued before it, and those that cannot say."""

from __future__ import annotations

import pytest

from admitd.jwt.revocation import is_revoked, issued_at


@pytest.mark.parametrize(
    ("issued", "revoked_at", "refused"),
    [
        pytest.param(100.0, None, False, id="never-revoked"),
        pytest.param(None, None, False, id="no-iat-never-revoked"),
        pytest.param(99.0, 100.5, True, id="issued-before"),
        pytest.param(100.0, 100.5, True, id="same-second-fail-closed"),
        pytest.param(101.0, 100.5, False, id="issued-after"),
        pytest.param(None, 100.5, True, id="no-iat-after-a-revocation"),
    ],
)
def test_is_revoked(issued: float | None, revoked_at: float | None, refused: bool) -> None:
    assert is_revoked(issued, revoked_at) is refused


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iat": 5}, 5.0),
        ({"iat": 5.5}, 5.5),
        ({"iat": True}, None),
        ({"iat": "5"}, None),
        ({}, None),
    ],
)
def test_issued_at(claims: dict[str, object], expected: float | None) -> None:
    assert issued_at(claims) == expected


async def test_memory_store_records_revoke_user() -> None:
    from admitd.sessions.memory_store import MemorySessionStore

    store = MemorySessionStore()
    assert await store.revoked_at("ana") is None
    await store.revoke_user("ana")
    assert (await store.revoked_at("ana") or 0) > 0 and await store.revoked_at("bo") is None
