"""Per-route `scopes:`: every listed scope must be in the JWT's `scope` / `scp`, else 403."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from admitd.core.decision import Reason
from admitd.core.identity import User
from admitd.core.policy_phase import policy_denial
from admitd.core.route import Route, SessionRequirement
from admitd.engine import Engine
from admitd.errors import ConfigError
from admitd.jwt.claims import user_from_claims
from admitd.jwt.config import IssuerConfig
from admitd.policy.loader import load_policies
from tests.pki_fixtures import PkiSet
from tests.unit.helpers import request
from tests.unit.jwt_tokens import AUDIENCE, ISSUER, NOW, Idp
from tests.unit.test_jwt_decision import check, engine_with

POLICY = """
routes:
  - name: ledger
    match: {path_prefix: /ledger/}
    identities: any
    scopes: [ledger:read, ledger:write]
"""


def loaded(tmp_path: Path, text: str = POLICY) -> Route:
    (tmp_path / "p.yaml").write_text(text)
    return load_policies(tmp_path / "p.yaml").routes[0]


def test_scopes_are_loaded_and_imply_a_user(tmp_path: Path) -> None:
    route = loaded(tmp_path)
    assert route.scopes == {"ledger:read", "ledger:write"}
    assert route.session is SessionRequirement.REQUIRED


def test_a_public_route_with_scopes_is_a_config_error(tmp_path: Path) -> None:
    text = "routes:\n  - name: x\n    match: {path_prefix: /}\n    public: true\n    scopes: [a]\n"
    with pytest.raises(ConfigError, match=r"p.yaml:\d+: routes\[0\].scopes: a public route"):
        loaded(tmp_path, text)


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        pytest.param({"scope": "openid ledger:read"}, {"openid", "ledger:read"}, id="scope"),
        pytest.param({"scp": ["ledger:read", 7]}, {"ledger:read"}, id="scp-list"),
        pytest.param({"scp": "a b"}, {"a", "b"}, id="scp-string"),
        pytest.param({}, set(), id="none"),
    ],
)
def test_claims_give_the_users_scopes(claims: dict[str, object], scopes: set[str]) -> None:
    issuer = IssuerConfig(issuer=ISSUER, audiences=(AUDIENCE,), role_map=MappingProxyType({}),
                          default_organisation="acme")  # fmt: skip
    assert user_from_claims({"sub": "ana", **claims}, issuer, "t").scopes == scopes


def test_a_session_user_has_no_scopes_and_is_refused(tmp_path: Path) -> None:
    route = loaded(tmp_path)
    user = User("ana", "acme", frozenset({"admin"}))
    ctx = request("/ledger/x")
    refusal = policy_denial(route, ctx, identity=None, user=user, risk=None, now=NOW)
    assert refusal is not None and refusal.reason is Reason.SCOPE_REQUIRED
    assert refusal.detail == "missing scopes: ledger:read ledger:write"


async def scoped_engine(pki: PkiSet, tmp_path: Path, idp: Idp) -> Engine:
    engine = await engine_with(pki, tmp_path, idp)
    (tmp_path / "p.yaml").write_text(POLICY)
    engine.replace_policy(load_policies(tmp_path / "p.yaml"))
    return engine


@pytest.mark.parametrize(
    ("scope", "reason", "status"),
    [
        pytest.param("ledger:read ledger:write openid", Reason.ALLOWED, 200, id="all"),
        pytest.param("ledger:read", Reason.SCOPE_REQUIRED, 403, id="one-missing"),
        pytest.param(None, Reason.SCOPE_REQUIRED, 403, id="no-scope-claim"),
    ],
)
async def test_a_jwt_needs_every_listed_scope(
    pki: PkiSet, tmp_path: Path, scope: str | None, reason: Reason, status: int
) -> None:
    idp = Idp()
    engine = await scoped_engine(pki, tmp_path, idp)
    decision = await check(engine, pki, "/ledger/q3", idp.token(scope=scope))
    assert (decision.reason, decision.status) == (reason, status)
    if status == 403:
        assert decision.code == "scope_required"
