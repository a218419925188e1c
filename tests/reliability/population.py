"""The request mix: public, certificate, session and privileged routes, each with
credentials that must be admitted and credentials that must be refused."""

from __future__ import annotations

import asyncio

from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token, parse_session_token
from tests.pki_fixtures import PkiSet
from tests.redis_sessions import create_session
from tests.reliability.load import Probe

__all__ = ["Credentials", "bearer", "fixed_probes", "session_probes"]

_DEVICE = "laptop-1"


class Credentials:
    """Client certificates for the mix, written once per stack."""

    def __init__(self, pki: PkiSet) -> None:
        self.alice = pki.write_leaf("rel-alice", pki.alice, pki.client_ca)
        self.revoked = pki.write_leaf("rel-revoked", pki.revoked, pki.client_ca)
        self.untrusted = pki.write_leaf("rel-untrusted", pki.untrusted, pki.foreign_root)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-device-id": _DEVICE, "user-agent": "rel/1"}


def fixed_probes(creds: Credentials) -> list[Probe]:
    """Probes whose answer never depends on Redis's contents."""
    return [
        Probe("public", "public", "/public/"),
        Probe("cert-ok", "cert", "/cert/", cert=creds.alice),
        Probe("cert-none", "cert", "/cert/", must_refuse=True),
        Probe("cert-revoked", "cert", "/cert/", cert=creds.revoked, must_refuse=True),
        Probe("cert-untrusted", "cert", "/cert/", cert=creds.untrusted, must_refuse=True),
        Probe("session-none", "session", "/app/", cert=creds.alice, must_refuse=True),
        Probe(
            "session-forged",
            "session",
            "/app/",
            cert=creds.alice,
            headers=bearer(new_session_token("mallory")[0]),  # well formed, never stored
            must_refuse=True,
        ),
    ]


def session_probes(redis_url: str, creds: Credentials, generation: int) -> list[Probe]:
    """Fresh sessions in Redis (this generation's users): valid, revoked, stale MFA, wrong role."""
    tag = f"g{generation}"
    viewer = create_session(redis_url, f"viewer-{tag}", {"viewer"}, device_id=_DEVICE)
    fresh = create_session(
        redis_url, f"fin-{tag}", {"finance"}, mfa_ago=30, with_totp=True, device_id=_DEVICE
    )
    stale = create_session(
        redis_url, f"stale-{tag}", {"finance"}, mfa_ago=7200, with_totp=True, device_id=_DEVICE
    )
    revoked = create_session(redis_url, f"gone-{tag}", {"viewer"}, device_id=_DEVICE)
    asyncio.run(_revoke(redis_url, revoked))
    alice = creds.alice
    return [
        Probe(f"session-ok-{tag}", "session", "/app/", cert=alice, headers=bearer(viewer)),
        Probe(f"priv-ok-{tag}", "privileged", "/finance/", cert=alice, headers=bearer(fresh)),
        Probe(
            f"priv-stale-{tag}",
            "privileged",
            "/finance/",
            cert=alice,
            headers=bearer(stale),
            must_refuse=True,
        ),
        Probe(
            f"priv-wrong-role-{tag}",
            "privileged",
            "/finance/",
            cert=alice,
            headers=bearer(viewer),
            must_refuse=True,
        ),
        Probe(
            f"session-revoked-{tag}",
            "session",
            "/app/",
            cert=alice,
            headers=bearer(revoked),
            must_refuse=True,
        ),
    ]


async def _revoke(redis_url: str, token: str) -> None:
    ref = parse_session_token(token)
    assert ref is not None
    store = RedisSessionStore(client_from_url(redis_url), cache_ttl=0)
    try:
        assert await store.revoke(ref)
    finally:
        await store.close()
