"""Sessions and MFA freshness in the decision: 401, 403, 428, 302, 503 and allow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from admitd.core.decision import Reason
from admitd.engine import Engine
from admitd.errors import StoreUnavailable
from admitd.extauthz.response import check_response_from_decision
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.tokens import SessionRef, new_session_token
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0
POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: payouts
    match: {path_prefix: /payouts/}
    identities: any
    mfa_max_age: 60
  - name: recover
    match: {path_prefix: /recover/}
    identities: any
    recovery: true
  - name: home
    match: {path_prefix: /home/}
    identities: any
    session: optional
"""


class Users:
    def __init__(self, store: MemorySessionStore) -> None:
        self.store = store

    async def login(
        self,
        user: str,
        roles: set[str],
        *,
        mfa_ago: float | None = None,
        factors: set[MfaMethod] | None = None,
    ) -> str:
        token, ref = new_session_token(user)
        for factor in factors if factors is not None else {MfaMethod.TOTP}:
            await self.store.set_factor(user, factor, active=True, at=NOW - 86_400)
        session = make_session(
            ref.session_id,
            user_id=user,
            roles=roles,
            device_id="laptop-1",
            now=NOW,
            created_ago=100,
            seen_ago=10,
            idle_timeout=1800,
            mfa_ago=mfa_ago,
        )
        await self.store.create(ref, session)
        return token


@pytest.fixture
def store() -> MemorySessionStore:
    return MemorySessionStore()


@pytest.fixture
def users(store: MemorySessionStore) -> Users:
    return Users(store)


@pytest.fixture
def engine(pki: PkiSet, tmp_path: Path, store: MemorySessionStore) -> Engine:
    (tmp_path / "p.yaml").write_text(POLICY)
    return engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_no_session_is_401(engine: Engine, pki: PkiSet) -> None:
    decision, _ = await engine.check(request("/reports/q3", cert=url_pem(pki.alice)))
    assert (decision.reason, decision.status) == (Reason.SESSION_REQUIRED, 401)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="malformed"),
        pytest.param("0123456789abcdef." + "A" * 43, id="unknown"),
    ],
)
async def test_bad_token_is_session_invalid(engine: Engine, pki: PkiSet, token: str) -> None:
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert decision.reason is Reason.SESSION_INVALID


async def test_fresh_privileged_session_is_admitted_with_identity_headers(
    engine: Engine, users: Users, pki: PkiSet
) -> None:
    token = await users.login("ana", {"analyst"}, mfa_ago=30)
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert decision.allowed and decision.mfa_checked
    upstream = dict(decision.upstream_headers)
    assert (upstream["x-admitd-user"], upstream["x-admitd-org"], upstream["x-admitd-roles"]) == (
        "ana",
        "acme",
        "analyst",
    )
    assert upstream["x-admitd-mfa-method"] == "totp"


async def test_stale_privileged_api_client_gets_428(
    engine: Engine, users: Users, pki: PkiSet
) -> None:
    token = await users.login("fin", {"finance"}, mfa_ago=3600)  # default max age 900
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert (decision.reason, decision.status) == (Reason.MFA_STEP_UP_REQUIRED, 428)
    body = json.loads(check_response_from_decision(decision).denied_response.body)["error"]
    assert body["code"] == "mfa_step_up_required" and body["max_age"] == 900
    assert body["step_up_url"].startswith("/.admitd/step-up")
    assert dict(decision.client_headers)["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", max_age=900'
    )


@pytest.mark.parametrize(
    ("headers", "redirect"),
    [
        pytest.param({"sec-fetch-mode": "navigate"}, True, id="navigate"),
        pytest.param({"accept": "text/html,application/xhtml+xml"}, True, id="legacy-html-get"),
        pytest.param({"sec-fetch-mode": "cors", "accept": "text/html"}, False, id="fetch"),
        pytest.param(
            {"accept": "text/html", "x-requested-with": "XMLHttpRequest"}, False, id="xhr"
        ),
    ],
)
async def test_browser_navigation_is_redirected_but_xhr_is_not(
    engine: Engine, users: Users, pki: PkiSet, headers: dict[str, str], redirect: bool
) -> None:
    token = await users.login("adm", {"admin"})
    cookie = {"cookie": f"theme=dark; __Host-admitd_session={token}", **headers}
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=cookie)
    )
    assert decision.reason is Reason.MFA_STEP_UP_REQUIRED
    assert decision.status == (302 if redirect else 428)
    assert ("location" in dict(decision.client_headers)) is redirect


async def test_privileged_user_without_factor_is_refused(
    engine: Engine, users: Users, pki: PkiSet
) -> None:
    token = await users.login("aud", {"auditor"}, mfa_ago=10, factors=set())
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert (decision.reason, decision.status) == (Reason.MFA_ENROLLMENT_REQUIRED, 403)


async def test_non_privileged_user_needs_no_mfa_unless_the_route_says_so(
    engine: Engine, users: Users, pki: PkiSet
) -> None:
    token = await users.login("bob", {"viewer"}, factors=set())
    cert = url_pem(pki.alice)
    assert (await engine.check(request("/reports/q3", cert=cert, headers=bearer(token))))[0].allowed
    payouts, _ = await engine.check(request("/payouts/1", cert=cert, headers=bearer(token)))
    assert payouts.reason is Reason.MFA_STEP_UP_REQUIRED and payouts.step_up_max_age == 60


async def test_recovery_route_needs_recent_mfa(engine: Engine, users: Users, pki: PkiSet) -> None:
    recent = await users.login("r1", {"viewer"}, mfa_ago=300)
    older = await users.login("r2", {"viewer"}, mfa_ago=900)
    cert = url_pem(pki.alice)
    assert (await engine.check(request("/recover/reset", cert=cert, headers=bearer(recent))))[
        0
    ].allowed
    stale, _ = await engine.check(request("/recover/reset", cert=cert, headers=bearer(older)))
    assert stale.reason is Reason.MFA_STEP_UP_REQUIRED and stale.step_up_max_age == 600


async def test_expired_session(
    engine: Engine, store: MemorySessionStore, users: Users, pki: PkiSet
) -> None:
    token = await users.login("old", {"viewer"})
    ref = next(iter(store._sessions))
    await store.touch({ref: NOW - 7200})  # idle for longer than the 1800 s idle timeout
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert (decision.reason, decision.status) == (Reason.SESSION_EXPIRED, 401)


async def test_optional_session_route(engine: Engine, users: Users, pki: PkiSet) -> None:
    cert = url_pem(pki.alice)
    assert (await engine.check(request("/home/x", cert=cert)))[0].allowed
    assert (await engine.check(request("/home/x", cert=cert, headers=bearer("junk"))))[0].allowed
    token = await users.login("opt", {"viewer"})
    decision, _ = await engine.check(request("/home/x", cert=cert, headers=bearer(token)))
    assert dict(decision.upstream_headers)["x-admitd-user"] == "opt"


class DownStore(MemorySessionStore):
    async def get(self, ref: SessionRef) -> Session | None:
        raise StoreUnavailable("redis: ConnectionError")


async def test_store_down_fails_closed_but_public_routes_serve(pki: PkiSet, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    engine, _ = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=DownStore())
    token, _ = new_session_token("anyone")
    decision, _ = await engine.check(
        request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token))
    )
    assert (decision.reason, decision.status) == (Reason.SESSION_STORE_UNAVAILABLE, 503)
    assert (await engine.check(request("/healthz")))[0].allowed


async def test_last_seen_is_batched(
    engine: Engine, store: MemorySessionStore, users: Users, pki: PkiSet
) -> None:
    token = await users.login("seen", {"viewer"})
    await engine.check(request("/reports/q3", cert=url_pem(pki.alice), headers=bearer(token)))
    (session,) = await store.list_user("seen")
    assert session.last_seen_at == NOW - 10
    await engine.flush_last_seen()
    (session,) = await store.list_user("seen")
    assert session.last_seen_at == NOW


async def test_mfa_enforcement_is_counted_by_privileged_role(
    engine: Engine, users: Users, pki: PkiSet
) -> None:
    from prometheus_client import CollectorRegistry

    from admitd.metrics import Metrics

    metrics = Metrics(CollectorRegistry(), privileged_roles=frozenset({"finance", "treasury"}))
    stale = await users.login("t1", {"treasury", "viewer"}, mfa_ago=3600)
    decision, _ = await engine.check(
        request("/payouts/1", cert=url_pem(pki.alice), headers=bearer(stale))
    )
    metrics.observe(decision, 0.001)
    assert metrics.mfa_enforcement.labels("treasury", "step_up")._value.get() == 1
