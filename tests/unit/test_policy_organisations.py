"""Per-organisation overrides: compiled at load, looked up whenever a variant needs a session,
enforced on every live session of that organisation, and explained.

The organisation comes from the session: a caller without a live one is judged by the
route itself (said at load, as a warning, for a route that admits such callers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from admitd.certs.client import ClientCertificates
from admitd.cli import main
from admitd.core.decision import Decision, Reason
from admitd.core.route import PolicySet, SessionRequirement
from admitd.engine import Engine
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies, policy_set_from_documents
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import SessionRef, new_session_token
from admitd.yamlsource import yaml_document_from_text
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0


def policy_from(routes: list[dict[str, object]]) -> PolicySet:
    text = json.dumps({"routes": routes})  # JSON is YAML, and never has aliases
    return policy_set_from_documents([yaml_document_from_text(text, "p.yaml")])


async def add_session(
    store: MemorySessionStore,
    user: str,
    organisation: str,
    roles: frozenset[str],
    *,
    mfa_ago: float | None = 30,
    expired: bool = False,
    stored: bool = True,
    issued: tuple[str, SessionRef] | None = None,
) -> dict[str, str]:
    token, ref = issued or new_session_token(user)
    await store.set_factor(user, MfaMethod.TOTP, active=True, at=NOW - 9999)
    if stored:
        await store.create(
            ref,
            make_session(
                ref.session_id,
                user_id=user,
                organisation=organisation,
                roles=roles,
                device_id="d",
                now=NOW,
                created_ago=100,
                seen_ago=1,
                idle_timeout=900,
                expires_in=-1 if expired else 900,
                mfa_ago=mfa_ago,
            ),
        )
    return {"authorization": f"Bearer {token}"}


# --- the rule, at load time -------------------------------------------------------------


ISSUE_POLICY = """
routes:
  - name: r
    match: {path_prefix: /r/}
    identities: any
    session: none
    organisations:
      acme: {session: required, roles: [admin]}
"""


async def test_a_variant_needing_a_session_binds_that_organisations_sessions(
    pki: PkiSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "p.yaml").write_text(ISSUE_POLICY)
    store = MemorySessionStore()
    engine = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]
    assert "organisation overrides apply to callers who present a session" in caplog.text
    acme_viewer = await add_session(store, "v", "acme", frozenset({"viewer"}))
    acme_admin = await add_session(store, "a", "acme", frozenset({"admin"}))
    other_viewer = await add_session(store, "o", "other", frozenset({"viewer"}))
    assert await reason_for(engine, pki, acme_viewer) is Reason.ROLE_REQUIRED
    assert await reason_for(engine, pki, acme_admin) is Reason.ALLOWED
    assert await reason_for(engine, pki, other_viewer) is Reason.ALLOWED
    assert await reason_for(engine, pki, {}) is Reason.ALLOWED  # no session: the route itself


def test_an_empty_organisation_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - name: r\n    identities: any\n    session: required\n"
        "    organisations:\n      '': {roles: [admin]}\n"
    )
    with pytest.raises(ConfigError, match=r"organisations: an organisation name is empty"):
        load_policies(tmp_path)


# --- the engine -------------------------------------------------------------------------

STRICT_FOR_ACME = """
routes:
  - name: r
    match: {path_prefix: /r/}
    identities: any
    session: required
    organisations:
      acme: {roles: [admin]}
      relaxed: {session: optional}
"""


@pytest.fixture
def store() -> MemorySessionStore:
    return MemorySessionStore()


@pytest.fixture
def engine(pki: PkiSet, tmp_path: Path, store: MemorySessionStore) -> Engine:
    (tmp_path / "p.yaml").write_text(STRICT_FOR_ACME)
    return engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]


async def reason_for(engine: Engine, pki: PkiSet, headers: dict[str, str]) -> Reason:
    decision, _ = await engine.check(request("/r/x", cert=url_pem(pki.alice), headers=headers))
    return decision.reason


async def test_each_organisation_gets_its_variant_and_a_bad_session_the_base(
    engine: Engine, store: MemorySessionStore, pki: PkiSet
) -> None:
    viewer = frozenset({"viewer"})
    acme_viewer = await add_session(store, "v", "acme", viewer)
    acme_admin = await add_session(store, "a", "acme", frozenset({"admin"}))
    other_viewer = await add_session(store, "o", "other", viewer)
    expired = await add_session(store, "e", "acme", viewer, expired=True)
    unknown = await add_session(store, "u", "acme", viewer, stored=False)
    assert await reason_for(engine, pki, acme_viewer) is Reason.ROLE_REQUIRED
    assert await reason_for(engine, pki, acme_admin) is Reason.ALLOWED
    assert await reason_for(engine, pki, other_viewer) is Reason.ALLOWED
    # Without a live session there is no organisation: the route itself applies.
    assert await reason_for(engine, pki, {}) is Reason.SESSION_REQUIRED
    assert await reason_for(engine, pki, expired) is Reason.SESSION_EXPIRED
    assert await reason_for(engine, pki, unknown) is Reason.SESSION_INVALID
    assert await reason_for(engine, pki, {"authorization": "Bearer junk"}) is (
        Reason.SESSION_INVALID
    )


async def test_a_variant_may_relax_the_route_for_its_own_sessions_only(
    engine: Engine, store: MemorySessionStore, pki: PkiSet
) -> None:
    relaxed = await add_session(store, "r", "relaxed", frozenset({"viewer"}))
    assert await reason_for(engine, pki, relaxed) is Reason.ALLOWED
    assert await reason_for(engine, pki, {}) is Reason.SESSION_REQUIRED


async def test_the_session_is_looked_up_when_only_a_variant_needs_it(
    engine: Engine, store: MemorySessionStore, pki: PkiSet
) -> None:
    # A lax base whose variant needs a session still gets the session looked up.
    route = engine.policy.routes[0]
    lax = dataclasses.replace(route, session=SessionRequirement.NONE)
    engine.replace_policy(PolicySet((lax,)))
    acme_viewer = await add_session(store, "v", "acme", frozenset({"viewer"}))
    assert await reason_for(engine, pki, acme_viewer) is Reason.ROLE_REQUIRED


async def test_a_variant_marked_shadow_only_records_its_denial(
    pki: PkiSet, tmp_path: Path, store: MemorySessionStore
) -> None:
    (tmp_path / "p.yaml").write_text(
        STRICT_FOR_ACME.replace("acme: {roles: [admin]}", "acme: {roles: [admin], shadow: true}")
    )
    engine = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]
    acme_viewer = await add_session(store, "v", "acme", frozenset({"viewer"}))
    decision, _ = await engine.check(request("/r/x", cert=url_pem(pki.alice), headers=acme_viewer))
    assert decision.allowed and decision.shadow_reason is Reason.ROLE_REQUIRED


# --- explain ------------------------------------------------------------------------------


def test_explain_applies_the_organisation_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(
        "routes:\n  - name: ledger\n    match: {path_prefix: /ledger/}\n    identities: any\n"
        "    mfa_max_age: 900\n    organisations:\n      strict-bank: {mfa_max_age: 60}\n"
    )
    request_file = tmp_path / "req.yaml"
    request_file.write_text(
        "request: {path: /ledger/x}\nprincipal: spiffe://x/y\n"
        "session: {user: s, organisation: strict-bank, roles: [viewer], mfa_age: 300,"
        " factors: [totp]}\n"
    )
    args = ["policy", "explain", "--request", str(request_file), "--policies", str(policies)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "organisation override: strict-bank" in out
    assert "MFA max age: 60s; session MFA age: 300" in out
    assert "decision: DENY 428 (mfa_step_up_required)" in out


# --- the property: a decision equals the one from the expanded per-organisation route -----

ORGS = ("acme", "beta")
ROLES = ("viewer", "editor", "admin")
CONDITIONS = (
    'request.method == "GET"',
    'session.roles.exists(r, r == "editor")',
    'session.organisation == "acme"',
    "session.mfa_age < 100",
)
roles = st.lists(st.sampled_from(ROLES), unique=True, max_size=2)
route_keys = st.fixed_dictionaries(
    {},
    optional={
        "session": st.sampled_from(["none", "optional", "required"]),
        "roles": roles,
        "mfa_max_age": st.sampled_from([60, 600]),
        "conditions": st.lists(st.sampled_from(CONDITIONS), unique=True, max_size=2),
        "risk": st.just({"step_up_at": "medium"}),
        "shadow": st.booleans(),
        "upstream_headers": st.just({"x-variant": "yes"}),
    },
)
base_keys = st.builds(
    lambda keys, session: {**keys, "session": session},
    route_keys,
    st.sampled_from(["required", "none", "optional"]),
)
overrides = st.dictionaries(st.sampled_from(ORGS), route_keys, min_size=1, max_size=2)


@dataclasses.dataclass(frozen=True)
class SessionSpec:
    organisation: str
    roles: list[str]
    mfa_ago: int | None
    expired: bool


session_spec = st.one_of(
    st.none(),
    st.builds(
        SessionSpec,
        organisation=st.sampled_from((*ORGS, *ORGS, "other")),
        roles=roles,
        mfa_ago=st.sampled_from([None, 30, 300, 3000]),
        expired=st.booleans(),
    ),
)


def base_route(keys: dict[str, object]) -> dict[str, object]:
    return {"name": "r", "match": {"path_prefix": "/r/"}, "identities": "any", **keys}


def comparable(decision: Decision) -> tuple[object, ...]:
    return (
        decision.allowed,
        decision.reason,
        decision.status,
        decision.step_up_max_age,
        decision.shadow_reason,
        decision.upstream_headers,
        decision.client_headers,
    )


@pytest.fixture(scope="module")
def certificates(pki: PkiSet, tmp_path_factory: pytest.TempPathFactory) -> ClientCertificates:
    directory = tmp_path_factory.mktemp("policies")
    (directory / "p.yaml").write_text("routes: [{name: x, identities: any}]\n")
    return engine_for(pki.trust_bundle, directory)[0].certificates


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=base_keys,
    variants=overrides,
    spec=session_spec,
    method=st.sampled_from(["GET", "POST"]),
)
def test_decision_equals_the_expanded_per_organisation_route(
    pki: PkiSet,
    certificates: ClientCertificates,
    base: dict[str, object],
    variants: dict[str, dict[str, object]],
    spec: SessionSpec | None,
    method: str,
) -> None:
    try:
        policy = policy_from([{**base_route(base), "organisations": variants}])
    except ConfigError as exc:
        assume_invalid(base, variants, exc)
        event("refused at load")
        return
    event(f"compared: {'a variant' if spec and spec.organisation in variants else 'the route'}")
    live_org = spec.organisation if spec is not None and not spec.expired else None
    chosen = {**base, **variants[live_org]} if live_org in variants else base
    expanded = policy_from([base_route(chosen)])
    issued = new_session_token("u")  # the same token for both: x-admitd-session derives from it
    assert comparable(decision_of(pki, certificates, policy, spec, method, issued)) == comparable(
        decision_of(pki, certificates, expanded, spec, method, issued)
    )


def assume_invalid(
    base: dict[str, object], variants: dict[str, dict[str, object]], exc: ConfigError
) -> None:
    """A refusal is fine only when the route or a variant is invalid on its own."""
    for keys in (base, *({**base, **v} for v in variants.values())):
        try:
            policy_from([base_route(keys)])
        except ConfigError:
            return
    raise AssertionError(f"a valid policy was refused: {exc}")


def decision_of(
    pki: PkiSet,
    certificates: ClientCertificates,
    policy: PolicySet,
    spec: SessionSpec | None,
    method: str,
    issued: tuple[str, SessionRef],
) -> Decision:
    async def run() -> Decision:
        store = MemorySessionStore()
        headers: dict[str, str] = {}
        if spec is not None:
            headers = await add_session(
                store,
                "u",
                spec.organisation,
                frozenset(spec.roles),
                mfa_ago=spec.mfa_ago,
                expired=spec.expired,
                issued=issued,
            )
        engine = Engine(policy, certificates, store=store, clock=lambda: NOW)
        ctx = request("/r/x", method=method, cert=url_pem(pki.alice), headers=headers)
        return (await engine.check(ctx))[0]

    return asyncio.run(run())


def test_a_variant_table_is_built_once_per_route() -> None:
    policy = policy_from(
        [base_route({"session": "required", "organisations": {"acme": {"roles": ["admin"]}}})]
    )
    route = policy.routes[0]
    assert isinstance(route.per_organisation, MappingProxyType)
    assert route.for_organisation("acme").roles == frozenset({"admin"})
    assert route.for_organisation("other") is route
