"""Step-up at the IdP: which place a stale-MFA browser is sent to, the signed `step_up`
value, what the IdP's answer must show, and a policy that asks for an IdP nobody configured."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast
from urllib.parse import parse_qsl, urlsplit

import pytest

from admitd.config import Config
from admitd.core.decision import Reason
from admitd.core.identity import MfaMethod, User
from admitd.core.route import StepUpAt
from admitd.engine import Engine
from admitd.errors import ConfigError
from admitd.oidc.handlers import step_up_sign_in_location
from admitd.oidc.step_up import sign_step_up, step_up_problem, verify_step_up
from admitd.policy.loader import load_policies
from admitd.runtime import _policy_loader
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.tokens import new_session_token
from admitd.web.return_to import ReturnToSigner
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0
SIGNER = ReturnToSigner(b"s" * 32)
KEY = SIGNER.subkey("oidc-step-up")
POLICY = """
routes:
  - name: payouts
    match: {path_prefix: /payouts/}
    identities: any
    mfa_max_age: 60
  - name: keys
    match: {path_prefix: /keys/}
    identities: any
    mfa_max_age: 60
    step_up: admitd
  - name: ledger
    match: {path_prefix: /ledger/}
    identities: any
    mfa_max_age: 90
    step_up: idp
    organisations:
      globex: {step_up: admitd}
"""


def idp_location(ctx: object, now: float, max_age: int) -> str:
    return step_up_sign_in_location(SIGNER, "api.test", "/x", now, max_age)


async def engine_with(
    pki: PkiSet, tmp_path: Path, default: StepUpAt, *, idp: bool = True
) -> tuple[Engine, MemorySessionStore]:
    (tmp_path / "p.yaml").write_text(POLICY)
    store = MemorySessionStore()
    engine, _ = engine_for(
        pki.trust_bundle,
        tmp_path,
        clock=NOW,
        store=store,
        idp_step_up_url=idp_location if idp else None,
        default_step_up=default,
    )
    return engine, store


async def stale_login(store: MemorySessionStore, organisation: str = "acme") -> str:
    token, ref = new_session_token("ann")
    await store.set_factor("ann", MfaMethod.TOTP, active=True, at=NOW - 86_400)
    session = make_session(
        ref.session_id, user_id="ann", organisation=organisation, roles={"admin"}, now=NOW,
        mfa_ago=3600,
    )  # fmt: skip
    await store.create(ref, session)
    return token


async def location_for(engine: Engine, pki: PkiSet, path: str, token: str) -> str:
    headers = {"cookie": f"__Host-admitd_session={token}", "sec-fetch-mode": "navigate"}
    decision, _ = await engine.check(request(path, cert=url_pem(pki.alice), headers=headers))
    assert decision.reason is Reason.MFA_STEP_UP_REQUIRED and decision.status == 302
    return decision.redirect_to


@pytest.mark.parametrize(
    ("default", "path", "organisation", "place"),
    [
        (StepUpAt.IDP, "/payouts/1", "acme", "idp"),
        (StepUpAt.IDP, "/keys/1", "acme", "admitd"),  # the route says admitd
        (StepUpAt.ADMITD, "/payouts/1", "acme", "admitd"),
        (StepUpAt.ADMITD, "/ledger/1", "acme", "idp"),  # the route says idp
        (StepUpAt.ADMITD, "/ledger/1", "globex", "admitd"),  # ... but not for globex
    ],
)
async def test_the_route_or_the_deployment_picks_where_to_step_up(
    pki: PkiSet, tmp_path: Path, default: StepUpAt, path: str, organisation: str, place: str
) -> None:
    engine, store = await engine_with(pki, tmp_path, default)
    location = await location_for(engine, pki, path, await stale_login(store, organisation))
    expected = "/.admitd/oidc/start?" if place == "idp" else "/.admitd/step-up"
    assert location.startswith(expected)


async def test_the_idp_link_carries_the_routes_max_age_signed(pki: PkiSet, tmp_path: Path) -> None:
    engine, store = await engine_with(pki, tmp_path, StepUpAt.ADMITD)
    location = await location_for(engine, pki, "/ledger/1", await stale_login(store))
    query = dict(parse_qsl(urlsplit(location).query))
    assert verify_step_up(KEY, query["return_to"], query["step_up"]) == 90


async def test_without_an_idp_every_route_steps_up_at_admitd(pki: PkiSet, tmp_path: Path) -> None:
    engine, store = await engine_with(pki, tmp_path, StepUpAt.IDP, idp=False)
    location = await location_for(engine, pki, "/ledger/1", await stale_login(store))
    assert location.startswith("/.admitd/step-up")


def test_a_signed_step_up_verifies_only_with_its_return_to() -> None:
    value = sign_step_up(KEY, "token-a", 300)
    assert verify_step_up(KEY, "token-a", value) == 300
    assert verify_step_up(KEY, "token-b", value) is None  # moved to another return_to
    assert verify_step_up(SIGNER.subkey("other"), "token-a", value) is None
    mac = value.partition(".")[2]
    assert verify_step_up(KEY, "token-a", f"3000.{mac}") is None  # laxer max_age
    for bad in ("", "300", ".", "0." + mac, "-1." + mac, "9999999." + mac, "x." + mac):
        assert verify_step_up(KEY, "token-a", bad) is None


@pytest.mark.parametrize(
    ("return_to", "value"),
    [
        pytest.param("token-a", "\u00b2.x", id="superscript-age"),  # "²".isdigit(), int() refuses
        pytest.param("token-a", "300.\u00e9", id="non-ascii-mac"),  # compare_digest: TypeError
        pytest.param("token-a\udcff", "300.abc", id="surrogate-return-to"),
    ],
)
def test_query_text_that_admitd_never_signs_is_refused_not_raised(
    return_to: str, value: str
) -> None:
    assert verify_step_up(KEY, return_to, value) is None


def user(verified_at: float | None) -> User:
    return User(
        user_id="ann",
        organisation="acme",
        roles=frozenset({"admin"}),
        session_id="",
        mfa_verified_at=verified_at,
        mfa_method=MfaMethod.TOTP if verified_at else None,
    )


@pytest.mark.parametrize(
    ("claims", "verified", "problem"),
    [
        ({"auth_time": NOW - 10}, NOW - 10, None),
        ({"auth_time": NOW - 300}, NOW - 300, None),  # exactly max_age
        ({"auth_time": NOW - 305}, NOW - 305, None),  # within the leeway
        ({"auth_time": NOW - 400}, NOW - 400, "did not ask you to sign in again"),
        ({"auth_time": NOW + 60}, NOW + 60, "in the future"),
        ({}, None, "did not say when"),
        ({"auth_time": True}, None, "did not say when"),
        ({"auth_time": NOW - 10}, None, "without a second factor"),  # amr: pwd only
    ],
)
def test_a_step_up_counts_only_with_a_recent_second_factor(
    claims: dict[str, object], verified: float | None, problem: str | None
) -> None:
    found = step_up_problem(claims, user(verified), 300, NOW, 30)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_policy_asking_for_an_idp_without_oidc_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    config = cast(Config, SimpleNamespace(oidc=None, file="/etc/admitd/admitd.yaml"))
    with pytest.raises(ConfigError) as caught:
        _policy_loader(config)(tmp_path)
    message = str(caught.value)
    assert "p.yaml" in message and "ledger.step_up" in message and "oidc:" in message
    with_idp = cast(Config, SimpleNamespace(oidc=object(), file="admitd.yaml"))
    assert _policy_loader(with_idp)(tmp_path).route_named("ledger") is not None


def test_an_organisation_asking_for_an_idp_without_oidc_is_refused(tmp_path: Path) -> None:
    policy = POLICY.replace("step_up: idp", "step_up: admitd").replace(
        "globex: {step_up: admitd}", "globex: {step_up: idp}"
    )
    (tmp_path / "p.yaml").write_text(policy)
    config = cast(Config, SimpleNamespace(oidc=None, file="admitd.yaml"))
    with pytest.raises(ConfigError, match=r"ledger\.step_up"):
        _policy_loader(config)(tmp_path)


def test_an_unknown_step_up_place_names_the_choices(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY.replace("step_up: admitd", "step_up: okta"))
    with pytest.raises(ConfigError, match=r"step_up: unexpected value 'okta'.*admitd, idp"):
        load_policies(tmp_path)
