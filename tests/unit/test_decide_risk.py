"""Device risk in the decision: critical denies, recovery refuses above medium, high steps up."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from admitd.core.decide import decide
from admitd.core.decision import Reason
from admitd.core.facts import Facts
from admitd.core.identity import User, UserLookup, UserState
from admitd.engine import Engine
from admitd.errors import StoreUnavailable
from admitd.extauthz.response import check_response_from_decision
from admitd.identity import Found
from admitd.risk.gatherer import RiskGatherer, RiskSighting
from admitd.risk.model import RiskAssessment, RiskHistory, RiskLevel, Signal, Telemetry
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod, Session, user_from_session
from admitd.sessions.tokens import new_session_token
from tests.pki_fixtures import PkiSet, url_pem
from tests.sessions import make_session
from tests.unit.helpers import engine_for, request

NOW = 1_800_000_000.0
POLICY = """
routes:
  - name: app
    match: {path_prefix: /app/}
    identities: any
    session: required
  - name: recover
    match: {path_prefix: /recover/}
    identities: any
    recovery: true
"""


@pytest.fixture
def engine(pki: PkiSet, tmp_path: Path) -> Engine:
    (tmp_path / "p.yaml").write_text(POLICY)
    return engine_for(pki.trust_bundle, tmp_path, clock=NOW)[0]


def session(mfa_ago: float | None) -> Session:
    return make_session(
        user_id="viv",
        roles={"viewer"},
        now=NOW,
        created_ago=60,
        seen_ago=5,
        idle_timeout=1800,
        mfa_ago=mfa_ago,
        factors={MfaMethod.TOTP},
    )


def risk(level: RiskLevel, *signals: Signal) -> RiskAssessment:
    return RiskAssessment(score=1.0, level=level, signals=signals, baseline_deviation=0.0)


def check(
    engine: Engine, pki: PkiSet, path: str, assessment: RiskAssessment | None, mfa_ago: float | None
):  # type: ignore[no-untyped-def]
    ctx = request(path, cert=url_pem(pki.alice))
    certificate = engine.certificates.facts_for(ctx, datetime.fromtimestamp(NOW, UTC))
    lookup = UserLookup(UserState.ACTIVE, user_from_session(session(mfa_ago)), "bearer")
    return decide(ctx, engine.policy, Facts(certificate, lookup, NOW, assessment), engine.rules)


def test_low_risk_is_admitted_and_surfaced(engine: Engine, pki: PkiSet) -> None:
    decision = check(engine, pki, "/app/x", risk(RiskLevel.LOW), mfa_ago=None)
    assert decision.allowed
    assert dict(decision.upstream_headers)["x-admitd-risk-level"] == "low"
    response = check_response_from_decision(decision)
    client = {h.header.key: h.header.value for h in response.ok_response.response_headers_to_add}
    assert client["x-admitd-risk-level"] == "low"
    assert response.dynamic_metadata["risk_level"] == "low"


def test_high_risk_steps_up_a_non_privileged_user(engine: Engine, pki: PkiSet) -> None:
    decision = check(
        engine,
        pki,
        "/app/x",
        risk(RiskLevel.HIGH, Signal.NEW_DEVICE, Signal.IP_REPUTATION),
        mfa_ago=3600,
    )
    assert (decision.reason, decision.status, decision.step_up_max_age) == (
        Reason.MFA_STEP_UP_REQUIRED,
        428,
        300,
    )
    body = json.loads(check_response_from_decision(decision).denied_response.body)["error"]
    assert (body["risk_level"], body["risk_signals"]) == ("high", "new_device,ip_reputation")
    assert dict(decision.client_headers)["x-admitd-risk-signals"] == "new_device,ip_reputation"


def test_high_risk_with_fresh_mfa_is_admitted(engine: Engine, pki: PkiSet) -> None:
    assert check(engine, pki, "/app/x", risk(RiskLevel.HIGH, Signal.NEW_DEVICE), mfa_ago=60).allowed


def test_critical_risk_is_denied_even_with_fresh_mfa(engine: Engine, pki: PkiSet) -> None:
    decision = check(
        engine, pki, "/app/x", risk(RiskLevel.CRITICAL, Signal.IMPOSSIBLE_TRAVEL), mfa_ago=10
    )
    assert (decision.reason, decision.status) == (Reason.RISK_CRITICAL, 403)


@pytest.mark.parametrize(
    ("level", "allowed"), [(RiskLevel.LOW, True), (RiskLevel.MEDIUM, True), (RiskLevel.HIGH, False)]
)
def test_recovery_is_refused_above_medium(
    engine: Engine, pki: PkiSet, level: RiskLevel, allowed: bool
) -> None:
    decision = check(engine, pki, "/recover/reset", risk(level), mfa_ago=30)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.RECOVERY_BLOCKED_BY_RISK


class BaselineDown:
    """A risk gatherer whose organisation baseline cannot be read."""

    async def assess(
        self, ctx: object, user: object, now: float, risk_state: object = None
    ) -> object:
        raise StoreUnavailable("redis: ConnectionError")


async def test_an_unreadable_baseline_is_risk_unavailable_not_a_session_problem(
    pki: PkiSet, tmp_path: Path
) -> None:
    store = MemorySessionStore()
    (tmp_path / "p.yaml").write_text(POLICY)
    engine, _ = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)
    engine.risk = cast(RiskGatherer, BaselineDown())
    token, ref = new_session_token("viv")
    await store.create(ref, session(mfa_ago=60))
    headers = {"authorization": f"Bearer {token}"}
    decision, _ = await engine.check(request("/app/x", cert=url_pem(pki.alice), headers=headers))
    assert (decision.allowed, decision.reason, decision.status) == (
        False, Reason.RISK_UNAVAILABLE, 503,
    )  # fmt: skip
    body = json.loads(check_response_from_decision(decision).denied_response.body)
    assert body["error"]["code"] == "risk_unavailable"


class IdpSource:
    """An identity source other than the admitd session: a user, and no history read."""

    cookie_name = ""

    def carries_own_bearer(self, ctx: object) -> bool:
        return False

    async def lookup(self, ctx: object, now: float) -> Found:
        user = User("idp-user", "acme", frozenset({"viewer"}), session_id="j" * 16)
        return Found(UserLookup(UserState.ACTIVE, user, "bearer"))

    async def flush_last_seen(self) -> None:
        return None


class CriticalRisk:
    def __init__(self) -> None:
        self.asked: list[object] = []

    async def assess(
        self, ctx: object, user: object, now: float, risk_state: object = None
    ) -> RiskSighting:
        self.asked.append(risk_state)
        telemetry = Telemetry("d", "ua", "198.51.100.1", None, None, now)
        return RiskSighting(telemetry, RiskHistory(), risk(RiskLevel.CRITICAL))

    def record_outcome(self, user: object, sighting: object, *, admitted: bool) -> None:
        return None


async def test_device_risk_applies_to_users_of_any_identity_source(
    pki: PkiSet, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    engine, _ = engine_for(pki.trust_bundle, tmp_path, clock=NOW)
    gatherer = CriticalRisk()
    engine.identity, engine.risk = IdpSource(), cast(RiskGatherer, gatherer)
    decision, _ = await engine.check(request("/app/x", cert=url_pem(pki.alice)))
    assert decision.reason is Reason.RISK_CRITICAL
    assert gatherer.asked == [None]  # no history came with the user: the gatherer reads it
