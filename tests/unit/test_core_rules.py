"""The decision core, rule by rule, from facts built directly: no PKI files, no YAML, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.identity import (
    CertificateFacts,
    CertificateProblem,
    ClientIdentity,
    MfaMethod,
    User,
    UserLookup,
    UserState,
)
from admitd.core.mfa_rules import MfaRules
from admitd.core.risk import RiskAssessment, RiskLevel, Signal
from admitd.core.route import IdentityRule, PolicySet, Route, RouteMatch, SessionRequirement

NOW = 1_800_000_000.0
ALICE = ClientIdentity("f" * 64, "e" * 64, "01", "CN=alice", ("spiffe://t/alice",), ())
WORKLOAD = CertificateFacts(ALICE, None)
ANY = IdentityRule(any_identity=True)


def route(name: str = "app", **changes: object) -> Route:
    base = Route(name, RouteMatch(path_prefix="/"), public=False, identities=ANY)
    return replace(base, **changes)  # type: ignore[arg-type]


def user(*roles: str, mfa_ago: float | None = None, factors: bool = True) -> UserLookup:
    verified = None if mfa_ago is None else NOW - mfa_ago
    person = User(
        "u", "acme", frozenset(roles), session_id="s" * 64, device_id="d",
        factors=frozenset({MfaMethod.TOTP}) if factors else frozenset(),
        mfa_verified_at=verified, mfa_method=MfaMethod.TOTP if verified else None,
    )  # fmt: skip
    return UserLookup(UserState.ACTIVE, person, "bearer")


def risk(level: RiskLevel) -> RiskAssessment:
    return RiskAssessment(1.0, level, (Signal.NEW_DEVICE,), 0.0)


CTX = RequestContext(
    method="GET", scheme="https", host="app.test", path="/x",
    headers={"x-forwarded-proto": "https"},
)  # fmt: skip


@dataclass(frozen=True)
class Case:
    route: Route
    facts: Facts
    reason: Reason
    status: int


CASES = {
    "public route, no certificate": Case(
        route(public=True, identities=IdentityRule()), Facts(CertificateFacts.missing()),
        Reason.PUBLIC_ROUTE, 200,
    ),
    "no certificate": Case(route(), Facts(CertificateFacts.missing()), Reason.CERTIFICATE_MISSING, 495),
    "revoked": Case(
        route(), Facts(CertificateFacts(None, CertificateProblem.REVOKED)),
        Reason.CERTIFICATE_REVOKED, 495,
    ),
    "identity not allowed": Case(
        route(identities=IdentityRule(subjects=frozenset({"CN=bob"}))), Facts(WORKLOAD),
        Reason.IDENTITY_NOT_ALLOWED, 495,
    ),
    "certificate only": Case(route(), Facts(WORKLOAD), Reason.ALLOWED, 200),
    "session required, none": Case(
        route(session=SessionRequirement.REQUIRED), Facts(WORKLOAD), Reason.SESSION_REQUIRED, 401,
    ),
    "store down": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, UserLookup(UserState.UNAVAILABLE)), Reason.SESSION_STORE_UNAVAILABLE, 503,
    ),
    "privileged, no factor": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("admin", factors=False), NOW), Reason.MFA_ENROLLMENT_REQUIRED, 403,
    ),
    "privileged, stale MFA": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("admin", mfa_ago=3600), NOW), Reason.MFA_STEP_UP_REQUIRED, 428,
    ),
    "privileged, fresh MFA": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("admin", mfa_ago=60), NOW), Reason.ALLOWED, 200,
    ),
    "high risk, stale MFA": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("viewer"), NOW, risk(RiskLevel.HIGH)), Reason.MFA_STEP_UP_REQUIRED, 428,
    ),
    "critical risk, fresh MFA": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("viewer", mfa_ago=10), NOW, risk(RiskLevel.CRITICAL)),
        Reason.RISK_CRITICAL, 403,
    ),
    "risk unavailable": Case(
        route(session=SessionRequirement.REQUIRED),
        Facts(WORKLOAD, user("viewer"), NOW, risk_unavailable=True), Reason.RISK_UNAVAILABLE, 503,
    ),
    "role missing": Case(
        route(session=SessionRequirement.REQUIRED, roles=frozenset({"auditor"})),
        Facts(WORKLOAD, user("viewer"), NOW), Reason.ROLE_REQUIRED, 403,
    ),
    "recovery above medium": Case(
        route(session=SessionRequirement.REQUIRED, recovery=True),
        Facts(WORKLOAD, user("viewer", mfa_ago=10), NOW, risk(RiskLevel.HIGH)),
        Reason.RECOVERY_BLOCKED_BY_RISK, 403,
    ),
    "shadow admits a role refusal": Case(
        route(session=SessionRequirement.REQUIRED, roles=frozenset({"auditor"}), shadow=True),
        Facts(WORKLOAD, user("viewer"), NOW), Reason.ALLOWED, 200,
    ),
}  # fmt: skip


def decision_for(case: Case, *, explain: bool = False) -> Decision:
    return decide(CTX, PolicySet((case.route,)), case.facts, MfaRules(), explain=explain)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_rule(case: Case) -> None:
    decision = decision_for(case)
    assert (decision.reason, decision.status) == (case.reason, case.status)
    assert decision.allowed is (case.status == 200)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_trace_is_kept_only_for_explain_and_changes_nothing(case: Case) -> None:
    quiet, explained = decision_for(case), decision_for(case, explain=True)
    assert quiet.trace == () and explained.trace
    assert explained == quiet  # the trace takes no part in the decision
    assert explained.trace[0].phase == "route"
