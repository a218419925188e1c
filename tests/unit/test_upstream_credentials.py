"""admitd's session cookie and bearer token never reach the upstream; other credentials do."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest, CheckResponse

from admitd.engine import Engine
from admitd.extauthz.request import context_from_check_request
from admitd.extauthz.response import check_response_from_decision
from admitd.sessions.config import SessionsConfig
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.tokens import new_session_token
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0
COOKIE = "__Host-admitd_session"
POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: certificate-only
    match: {path_prefix: /api/}
    identities: any
  - name: own-auth
    match: {path_prefix: /legacy/}
    identities: any
    session: required
    upstream_headers: {authorization: "Basic dXBzdHJlYW06a2V5"}
  - name: trial
    match: {path_prefix: /trial/}
    identities: {spiffe: ["spiffe://test.example/user/nobody"]}
    shadow: true
"""


@pytest.fixture
def store() -> MemorySessionStore:
    return MemorySessionStore()


@pytest.fixture
def engine(pki: PkiSet, tmp_path: Path, store: MemorySessionStore) -> Engine:
    (tmp_path / "p.yaml").write_text(POLICY)
    return engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]


@pytest.fixture
async def token(store: MemorySessionStore) -> str:
    token, ref = new_session_token("carol")
    session = make_session(
        ref.session_id,
        user_id="carol",
        roles={"reader"},
        device_id="laptop-1",
        now=NOW,
        created_ago=100,
        seen_ago=10,
        idle_timeout=1800,
    )
    await store.create(ref, session)
    return token


async def upstream_view(
    engine: Engine, pki: PkiSet, path: str, headers: dict[str, str]
) -> tuple[dict[str, str], set[str]]:
    """(headers admitd sets for the upstream, headers it removes), from the CheckResponse."""
    decision, _ = await engine.check(request(path, cert=url_pem(pki.alice), headers=headers))
    assert decision.allowed, decision
    return ok_headers(check_response_from_decision(decision))


def ok_headers(response: CheckResponse) -> tuple[dict[str, str], set[str]]:
    ok = response.ok_response
    assert all(h.append_action == h.OVERWRITE_IF_EXISTS_OR_ADD for h in ok.headers)
    return {h.header.key: h.header.value for h in ok.headers}, set(ok.headers_to_remove)


async def test_session_cookie_is_cut_and_other_cookies_are_kept(
    engine: Engine, pki: PkiSet, token: str
) -> None:
    cookies = f"theme=dark; {COOKIE}={token}; lang=en"
    setting, removing = await upstream_view(engine, pki, "/reports/q3", {"cookie": cookies})
    assert setting["cookie"] == "theme=dark; lang=en"
    assert setting["x-admitd-user"] == "carol" and token not in str(setting)
    assert "cookie" not in removing  # overwritten, not also removed (Envoy's order is not ours)


async def test_cookie_header_holding_only_the_session_is_removed(
    engine: Engine, pki: PkiSet, token: str
) -> None:
    setting, removing = await upstream_view(
        engine, pki, "/reports/q3", {"cookie": f"{COOKIE}={token}"}
    )
    assert "cookie" in removing and "cookie" not in setting


async def test_session_bearer_token_is_removed(engine: Engine, pki: PkiSet, token: str) -> None:
    headers = {"authorization": f"Bearer {token}", "cookie": "theme=dark"}
    setting, removing = await upstream_view(engine, pki, "/reports/q3", headers)
    assert "authorization" in removing
    assert "cookie" not in setting and "cookie" not in removing  # nothing of ours in it
    assert setting["x-admitd-session"] and setting["x-admitd-session"] not in token


@pytest.mark.parametrize(
    "authorization",
    ["Bearer {token}", "bearer\t{token}", "Basic YTpi,Bearer {token}", "Bearer {token},Bearer x"],
)
async def test_every_spelling_of_the_session_bearer_is_removed(
    engine: Engine, pki: PkiSet, token: str, authorization: str
) -> None:
    headers = {"authorization": authorization.format(token=token)}
    _, removing = await upstream_view(engine, pki, "/api/items", headers)
    assert "authorization" in removing


@pytest.mark.parametrize("path", ["/healthz", "/api/items", "/trial/x"])
async def test_credentials_are_removed_on_routes_that_never_read_them(
    engine: Engine, pki: PkiSet, token: str, path: str
) -> None:
    headers = {"authorization": f"bearer  {token} ", "cookie": f"{COOKIE}={token}; a=1"}
    setting, removing = await upstream_view(engine, pki, path, headers)
    assert "authorization" in removing and setting["cookie"] == "a=1"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer upstream-api-key", "Basic YTpi", "Bearer 0123456789abcdef.short", "Token x"],
)
async def test_other_authorization_reaches_the_upstream(
    engine: Engine, pki: PkiSet, authorization: str
) -> None:
    setting, removing = await upstream_view(
        engine, pki, "/api/items", {"authorization": authorization}
    )
    assert "authorization" not in removing and "authorization" not in setting


@pytest.mark.parametrize(
    ("cookies", "kept"),
    [
        pytest.param(f"{COOKIE}=a;{COOKIE}=b; x=1", "x=1", id="repeated-no-space"),
        pytest.param(f"x=1 ;  {COOKIE} = a ; y=2", "x=1; y=2", id="spaces-around-name"),
        pytest.param(f'{COOKIE}="quoted"; x=1', "x=1", id="quoted-value"),
        pytest.param(f"{COOKIE}=; x=1", "x=1", id="empty-value"),
        pytest.param(f"{COOKIE}=not-a-token; x=1", "x=1", id="any-value"),
        pytest.param(f"{COOKIE}=a;; x=1;", "x=1", id="empty-pairs"),
        pytest.param(f"a=1,{COOKIE}=t,b=2", "a=1; b=2", id="repeated-headers-joined-by-envoy"),
    ],
)
async def test_every_copy_of_the_session_cookie_is_cut(
    engine: Engine, pki: PkiSet, cookies: str, kept: str
) -> None:
    setting, _ = await upstream_view(engine, pki, "/api/items", {"cookie": cookies})
    assert setting["cookie"] == kept


@pytest.mark.parametrize(
    "cookies",
    [f"x{COOKIE}=1", f"{COOKIE}2=1", f"a={COOKIE}=1", f"{COOKIE.lower()}=1", "theme=dark"],
)
async def test_lookalike_cookies_are_left_alone(engine: Engine, pki: PkiSet, cookies: str) -> None:
    setting, removing = await upstream_view(engine, pki, "/api/items", {"cookie": cookies})
    assert "cookie" not in setting and "cookie" not in removing


async def test_configured_cookie_name_is_the_one_cut(
    pki: PkiSet, tmp_path: Path, store: MemorySessionStore
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    engine = engine_for(
        pki.trust_bundle, tmp_path, store=store, sessions=SessionsConfig(cookie_name="sid")
    )[0]
    cookies = f"sid=x; {COOKIE}=y"
    setting, _ = await upstream_view(engine, pki, "/api/items", {"cookie": cookies})
    assert setting["cookie"] == f"{COOKIE}=y"


async def test_route_credentials_for_the_upstream_win_over_removal(
    engine: Engine, pki: PkiSet, token: str
) -> None:
    setting, removing = await upstream_view(
        engine, pki, "/legacy/x", {"authorization": f"Bearer {token}"}
    )
    assert setting["authorization"] == "Basic dXBzdHJlYW06a2V5"
    assert "authorization" not in removing


async def test_split_cookie_headers_are_joined_as_one_list(
    engine: Engine, pki: PkiSet, token: str
) -> None:
    # RFC 9113 §8.2.3: HTTP/2 may send each cookie as its own field; joined with "; ".
    message = CheckRequest()
    message.attributes.source.certificate = url_pem(pki.alice)
    http = message.attributes.request.http
    http.method, http.path, http.host, http.scheme = "GET", "/reports/q3", "api.test", "https"
    for key, value in [
        ("x-forwarded-proto", "https"),
        ("cookie", "theme=dark"),
        ("cookie", f"{COOKIE}={token}"),
        ("cookie", "lang=en"),
    ]:
        http.header_map.headers.add(key=key, raw_value=value.encode())
    decision, _ = await engine.check(context_from_check_request(message))
    assert decision.allowed and decision.user is not None
    setting, _ = ok_headers(check_response_from_decision(decision))
    assert setting["cookie"] == "theme=dark; lang=en"


def test_a_forged_risk_header_is_overwritten_not_also_removed() -> None:
    """Set and removed at once would depend on the order Envoy applies the two."""
    from admitd.core.context import RequestContext
    from admitd.core.decide import decide
    from admitd.core.facts import CertificateFacts, Facts
    from admitd.core.identity import ClientIdentity, User, UserLookup, UserState
    from admitd.core.risk import RiskAssessment, RiskLevel
    from admitd.core.route import IdentityRule, PolicySet, Route, RouteMatch, SessionRequirement

    identity = ClientIdentity("f" * 64, "e" * 64, "01", "CN=a", ("spiffe://t/a",), ())
    route = Route(
        "r", RouteMatch(), public=False, identities=IdentityRule(any_identity=True),
        session=SessionRequirement.REQUIRED,
    )  # fmt: skip
    user = UserLookup(UserState.ACTIVE, User("u", "acme", frozenset({"viewer"})), "bearer")
    risk = RiskAssessment(0.0, RiskLevel.LOW, (), 0.0)
    ctx = RequestContext(
        method="GET", scheme="https", host="h", path="/x",
        headers={"x-forwarded-proto": "https", "x-admitd-risk-level": "low-forged"},
    )  # fmt: skip
    facts = Facts(CertificateFacts(identity, None), user, 1.0, risk)
    decision = decide(ctx, PolicySet((route,)), facts)
    assert dict(decision.upstream_headers)["x-admitd-risk-level"] == "low"
    assert "x-admitd-risk-level" not in decision.headers_to_remove
