"""The soak's distinct inputs, generated once per run: client certificates, users, sessions.

Every user has their own session, device ID and user agent; users are spread over a few
organisations (one baseline each). Certificates come in two kinds: a few *pinned* ones
that session traffic keeps reusing (their TLS connections stay open), and many *fresh*
ones, each used for a handful of requests and never again, so the verdict cache sees a
stream of certificates it has never met (its bound, not the input, must cap it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from admitd.pki import issue_leaf
from admitd.sessions.model import MfaMethod
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.sessions.tokens import new_session_token
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session

__all__ = ["CertFiles", "JwtUser", "Population", "SoakUser", "build_population"]

CertFiles = tuple[Path, Path]

ORGANISATIONS = 8
# Longer than the full soak and its warm-up: no session expires (or idles out) mid-run.
_SESSION_SECONDS = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class SoakUser:
    token: str
    device_id: str
    user_agent: str
    cert: CertFiles  # the pinned certificate this user's requests present


@dataclass(frozen=True, slots=True)
class JwtUser:
    """A user who brings IdP tokens (minted per request by tests/soak/issuer.py)."""

    user_id: str
    organisation: str
    device_id: str
    user_agent: str
    cert: CertFiles


@dataclass(frozen=True, slots=True)
class Population:
    viewers: list[SoakUser]  # role viewer: /app/ admits them
    finance: list[SoakUser]  # role finance, MFA fresh: /finance/ admits them
    stale: list[SoakUser]  # role finance, MFA two hours old: /finance/ steps them up
    jwt_users: list[JwtUser]  # role viewer by JWT: /app/ admits them
    forged: list[str]  # well-formed session tokens that were never stored
    pinned: list[CertFiles]
    fresh: list[CertFiles]
    alice: CertFiles  # the one identity /cert/ admits

    @property
    def users(self) -> int:
        return len(self.viewers) + len(self.finance) + len(self.stale) + len(self.jwt_users)


def build_population(
    pki: PkiSet,
    redis_url: str,
    directory: Path,
    *,
    viewers: int,
    finance: int,
    stale: int,
    jwt_users: int,
    forged: int,
    pinned: int,
    fresh: int,
) -> Population:
    directory.mkdir(parents=True, exist_ok=True)
    pinned_certs = [_leaf(pki, directory, f"pinned-{n}") for n in range(pinned)]
    # Valid for a year: none falls in the 30-day expiry-reminder window, whose tracker
    # (admitd.certs.expiring, 10,000 entries) a run this short could not fill.
    fresh_certs = [_leaf(pki, directory, f"fresh-{n}") for n in range(fresh)]
    alice = pki.write_leaf("soak-alice", pki.alice, pki.client_ca)
    groups = asyncio.run(
        _create_sessions(
            redis_url, pinned_certs, {"viewer": viewers, "fin": finance, "stale": stale}
        )
    )
    forged_tokens = [new_session_token(f"nobody-{n}")[0] for n in range(forged)]
    bearers = [_jwt_user(n, pinned_certs) for n in range(jwt_users)]
    return Population(
        groups["viewer"],
        groups["fin"],
        groups["stale"],
        bearers,
        forged_tokens,
        pinned_certs,
        fresh_certs,
        alice,
    )


def _jwt_user(n: int, certs: list[CertFiles]) -> JwtUser:
    agent = f"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) soak/jwt-{n} Safari/605.1.15"
    organisation = f"org-{n % ORGANISATIONS}"
    return JwtUser(f"soak-jwt-{n}", organisation, f"dev-jwt-{n}", agent, certs[n % len(certs)])


def _leaf(pki: PkiSet, directory: Path, name: str) -> CertFiles:
    issued = issue_leaf(pki.client_ca, name, uris=(f"spiffe://test.example/soak/{name}",))
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem + pki.client_ca.cert_pem)
    key.write_bytes(issued.key_pem)
    return cert, key


async def _create_sessions(
    redis_url: str, certs: list[CertFiles], counts: dict[str, int]
) -> dict[str, list[SoakUser]]:
    """As tests/redis_sessions.create_session does, but thousands on one connection."""
    store = RedisSessionStore(client_from_url(redis_url), cache_ttl=0)
    now, made = time.time(), 0
    groups: dict[str, list[SoakUser]] = {}
    try:
        for group, count in counts.items():
            users = groups.setdefault(group, [])
            for n in range(count):
                users.append(await _create_one(store, group, n, certs[made % len(certs)], now))
                made += 1
    finally:
        await store.close()
    return groups


async def _create_one(
    store: RedisSessionStore, group: str, n: int, cert: CertFiles, now: float
) -> SoakUser:
    user_id = f"soak-{group}-{n}"
    token, ref = new_session_token(user_id)
    privileged = group in {"fin", "stale"}
    if privileged:
        await store.set_factor(user_id, MfaMethod.TOTP, active=True, at=now)
    session = make_session(
        ref.session_id,
        user_id=user_id,
        organisation=f"org-{n % ORGANISATIONS}",
        roles={"finance"} if privileged else {"viewer"},
        device_id=f"dev-{group}-{n}",
        now=now,
        idle_timeout=_SESSION_SECONDS,
        expires_in=_SESSION_SECONDS,
        mfa_ago={"fin": 0.0, "stale": 7200.0}.get(group),
    )
    await store.create(ref, session)
    agent = f"Mozilla/5.0 (X11; Linux x86_64) soak/{group}-{n} Firefox/128.0"
    return SoakUser(token, session.device_id, agent, cert)
