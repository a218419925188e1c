"""Route rules beyond identities: roles, CEL conditions, header matches, defaults, shadow mode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from admitd.core.decision import Reason
from admitd.engine import Engine
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import new_session_token
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0
POLICY = """
defaults:
  identities: any
routes:
  - name: tenant
    match:
      path_prefix: /t/
      headers: {x-tenant: acme, x-env: {regex: "prod|stage"}}
    upstream_headers: {x-tenant-verified: "yes"}
  - name: reports
    match: {path_prefix: /reports/}
    roles: [auditor, admin]
    mfa_max_age: {default: 900, admin: 60}
  - name: writes
    match: {path_prefix: /w/}
    session: required
    conditions:
      - request.method == "GET" || session.roles.exists(r, r == "editor")
      - principal.name.startsWith("spiffe://test.example/user/")
  - name: trial
    match: {path_prefix: /trial/}
    session: required
    roles: [beta]
    shadow: true
"""


@pytest.fixture
def store() -> MemorySessionStore:
    return MemorySessionStore()


@pytest.fixture
def engine(pki: PkiSet, tmp_path: Path, store: MemorySessionStore) -> Engine:
    (tmp_path / "p.yaml").write_text(POLICY)
    return engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]


async def login(
    store: MemorySessionStore, user: str, roles: set[str], mfa_ago: float = 30
) -> dict[str, str]:
    token, ref = new_session_token(user)
    await store.set_factor(user, MfaMethod.TOTP, active=True, at=NOW - 999)
    await store.create(
        ref,
        make_session(
            ref.session_id,
            user_id=user,
            roles=roles,
            device_id="d",
            now=NOW,
            created_ago=10,
            seen_ago=1,
            idle_timeout=900,
            expires_in=900,
            mfa_ago=mfa_ago,
        ),
    )
    return {"authorization": f"Bearer {token}"}


async def test_header_match_and_upstream_headers(engine: Engine, pki: PkiSet) -> None:
    cert = url_pem(pki.alice)
    decision, _ = await engine.check(
        request("/t/x", cert=cert, headers={"x-tenant": "acme", "x-env": "prod"})
    )
    assert decision.allowed and dict(decision.upstream_headers)["x-tenant-verified"] == "yes"
    miss, _ = await engine.check(
        request("/t/x", cert=cert, headers={"x-tenant": "acme", "x-env": "dev"})
    )
    assert miss.reason is Reason.NO_MATCHING_ROUTE


async def test_roles_and_per_role_mfa_age(
    engine: Engine, store: MemorySessionStore, pki: PkiSet
) -> None:
    cert = url_pem(pki.alice)
    viewer = await login(store, "v", {"viewer"})
    assert (await engine.check(request("/reports/q", cert=cert, headers=viewer)))[
        0
    ].reason is Reason.ROLE_REQUIRED
    auditor = await login(store, "a", {"auditor"}, mfa_ago=600)
    assert (await engine.check(request("/reports/q", cert=cert, headers=auditor)))[
        0
    ].allowed  # default 900
    admin = await login(store, "b", {"admin"}, mfa_ago=600)
    decision, _ = await engine.check(request("/reports/q", cert=cert, headers=admin))
    assert (decision.reason, decision.step_up_max_age) == (Reason.MFA_STEP_UP_REQUIRED, 60)


async def test_cel_conditions(engine: Engine, store: MemorySessionStore, pki: PkiSet) -> None:
    cert = url_pem(pki.alice)
    reader = await login(store, "r", {"viewer"})
    editor = await login(store, "e", {"editor"})
    assert (await engine.check(request("/w/doc", cert=cert, headers=reader)))[0].allowed
    post, _ = await engine.check(request("/w/doc", method="POST", cert=cert, headers=reader))
    assert (post.reason, post.status) == (Reason.CONDITION_FAILED, 403)
    assert (await engine.check(request("/w/doc", method="POST", cert=cert, headers=editor)))[
        0
    ].allowed


async def test_shadow_route_admits_but_records_the_would_be_denial(
    engine: Engine, store: MemorySessionStore, pki: PkiSet
) -> None:
    viewer = await login(store, "s", {"viewer"})
    decision, _ = await engine.check(request("/trial/x", cert=url_pem(pki.alice), headers=viewer))
    assert decision.allowed and decision.shadow_reason is Reason.ROLE_REQUIRED


async def test_context_extensions_select_the_route(engine: Engine, pki: PkiSet) -> None:
    ctx = dataclasses.replace(
        request("/anything", cert=url_pem(pki.alice)), context_extensions={"admitd_route": "tenant"}
    )
    assert (await engine.check(ctx))[0].route == "tenant"
    unknown = dataclasses.replace(ctx, context_extensions={"admitd_route": "nope"})
    assert (await engine.check(unknown))[0].reason is Reason.NO_MATCHING_ROUTE


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(
            "{name: x, identities: any, conditions: ['request.method ==']}",
            r"conditions: invalid CEL",
            id="cel-syntax",
        ),
        pytest.param(
            "{name: x, identities: any, conditions: ['user.id == 1']}",
            r"unknown variable 'user'",
            id="cel-variable",
        ),
        pytest.param(
            "{name: x, public: true, roles: [a]}",
            r"roles: a public route has no session",
            id="public-roles",
        ),
        pytest.param(
            "{name: x, identities: any, upstream_headers: {x-admitd-user: a}}",
            r"x-admitd-\* is reserved",
            id="reserved-header",
        ),
        pytest.param(
            "{name: x, identities: any, risk: {step_up_at: critical, deny_at: high}}",
            r"deny_at: high is below step_up_at",
            id="risk-order",
        ),
        pytest.param(
            "{name: x, identities: any, match: {headers: {x-a: {regex: '('}}}}",
            r"regex: invalid regular expression",
            id="header-regex",
        ),
    ],
)
def test_bad_rules_name_file_and_key(tmp_path: Path, route: str, expected: str) -> None:
    (tmp_path / "p.yaml").write_text(f"routes:\n  - {route}\n")
    with pytest.raises(ConfigError, match=expected):
        load_policies(tmp_path)


async def test_per_organisation_override(
    pki: PkiSet, tmp_path: Path, store: MemorySessionStore
) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: ledger\n    match: {path_prefix: /ledger/}\n    identities: any\n"
        "    mfa_max_age: 900\n    organisations:\n      strict-bank: {mfa_max_age: 60}\n"
    )
    engine = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]
    cert = url_pem(pki.alice)
    relaxed = await login(store, "r1", {"viewer"}, mfa_ago=300)
    assert (await engine.check(request("/ledger/x", cert=cert, headers=relaxed)))[0].allowed
    strict_token, ref = new_session_token("s1")
    await store.create(
        ref,
        make_session(
            ref.session_id,
            user_id="s1",
            organisation="strict-bank",
            roles={"viewer"},
            device_id="d",
            now=NOW,
            created_ago=10,
            seen_ago=1,
            idle_timeout=900,
            expires_in=900,
            mfa_ago=300,
        ),
    )
    decision, _ = await engine.check(
        request("/ledger/x", cert=cert, headers={"authorization": f"Bearer {strict_token}"})
    )
    assert (decision.reason, decision.step_up_max_age) == (Reason.MFA_STEP_UP_REQUIRED, 60)


def test_organisation_overrides_cannot_change_identities(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: x\n    identities: any\n    organisations:\n      acme: {identities: any}\n"
    )
    with pytest.raises(ConfigError, match=r"organisations.acme.identities: unknown key"):
        load_policies(tmp_path)
