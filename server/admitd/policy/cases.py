"""Policy test cases: a request description plus the facts admitd would gather for it.

Written next to the policies as `*.test.yaml` (see README "Policy tests"):

    tests:
      - name: an analyst with stale MFA is stepped up
        request: {method: GET, path: /finance/ledger, host: api.example.com, headers: {}}
        principal: spiffe://example.org/user/ana     # or "none", or a subject "CN=..."
        session: {user: ana, roles: [analyst], mfa_age: 3600, factors: [totp]}
        risk: {level: high, signals: [new_device]}
        expect: {status: 428, reason: mfa_step_up_required, upstream_headers: {}}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType

from admitd.core.context import RequestContext
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
from admitd.fields import Fields
from admitd.risk.model import RiskAssessment, RiskLevel, Signal
from admitd.sessions.carrier import carries_session_bearer
from admitd.sessions.config import SessionsConfig
from admitd.yamlsource import YamlDocument

__all__ = ["CASE_KEYS", "Expectation", "PolicyCase", "case_from_fields"]

CASE_KEYS = {"name", "request", "principal", "certificate_problem", "session", "risk", "expect"}
_REQUEST_KEYS = {"method", "path", "host", "headers", "source_address"}
_SESSION_KEYS = {"user", "organisation", "roles", "mfa_age", "factors", "state"}
_RISK_KEYS = {"level", "signals"}
_EXPECT_KEYS = {"status", "reason", "upstream_headers", "client_headers"}
NOW = 1_800_000_000.0  # a fixed clock: cases are deterministic


@dataclass(frozen=True, slots=True)
class Expectation:
    status: int | None = None
    reason: str | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)
    client_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    source: str
    ctx: RequestContext
    facts: Facts
    expect: Expectation


def case_from_fields(fields: Fields) -> PolicyCase:
    name = fields.text("name")
    ctx = _request(fields.sub("request", _REQUEST_KEYS))
    facts = Facts(
        _certificate(fields),
        _session(fields),
        NOW,
        _risk(fields),
        # What the engine's session source says, so the upstream headers match production.
        credential_cookie=SessionsConfig().cookie_name,
        credential_bearer=carries_session_bearer(ctx.header("authorization")),
    )
    return PolicyCase(
        name=name,
        source=f"{fields.doc.file}:{fields.doc.line_of(fields.path) or '?'}",
        ctx=ctx,
        facts=facts,
        expect=_expect(fields.sub("expect", _EXPECT_KEYS)),
    )


def _request(fields: Fields) -> RequestContext:
    headers = {str(k).lower(): str(v) for k, v in _mapping(fields, "headers").items()}
    headers.setdefault("x-forwarded-proto", "https")
    return RequestContext(
        method=fields.text("method", "GET").upper(),
        scheme="https",
        host=fields.text("host", "localhost"),
        path=fields.text("path", "/"),
        headers=MappingProxyType(headers),
        source_address=fields.text("source_address", "192.0.2.10"),
    )


def _certificate(fields: Fields) -> CertificateFacts:
    if fields.has("certificate_problem"):
        problem = CertificateProblem(
            fields.choice("certificate_problem", "untrusted", tuple(CertificateProblem))
        )
        return CertificateFacts(None, problem, "from the test case")
    principal = fields.text("principal", "none")
    if principal == "none":
        return CertificateFacts.missing()
    digest = hashlib.sha256(principal.encode()).hexdigest()
    uris = (principal,) if "://" in principal else ()
    subject = principal if "=" in principal and not uris else f"CN={principal}"
    dns = (principal,) if not uris and "=" not in principal else ()
    identity = ClientIdentity(digest, digest, "1", subject, uris, dns)
    return CertificateFacts(identity, None)


def _session(fields: Fields) -> UserLookup:
    if not fields.has("session"):
        return UserLookup(UserState.NOT_PRESENTED)
    spec = fields.sub("session", _SESSION_KEYS)
    state = UserState(spec.choice("state", "active", tuple(UserState)))
    if state is not UserState.ACTIVE:
        return UserLookup(state)
    mfa_age = spec.integer("mfa_age", -1, minimum=-1, maximum=10**9)
    user = User(
        user_id=spec.text("user", "user"),
        organisation=spec.text("organisation", "org"),
        roles=frozenset(spec.texts("roles")),
        session_id="0" * 64,
        device_id="test-device",
        factors=frozenset(MfaMethod(f) for f in spec.texts("factors") if f in tuple(MfaMethod)),
        mfa_verified_at=None if mfa_age < 0 else NOW - mfa_age,
        mfa_method=None if mfa_age < 0 else MfaMethod.TOTP,
    )
    return UserLookup(UserState.ACTIVE, user, "bearer")


def _risk(fields: Fields) -> RiskAssessment | None:
    if not fields.has("risk"):
        return None
    spec = fields.sub("risk", _RISK_KEYS)
    level = RiskLevel(spec.choice("level", "low", tuple(RiskLevel)))
    signals = tuple(Signal(s) for s in spec.texts("signals") if s in tuple(Signal))
    return RiskAssessment(score=0.0, level=level, signals=signals, baseline_deviation=0.0)


def _expect(fields: Fields) -> Expectation:
    return Expectation(
        status=fields.integer("status", 0, minimum=0, maximum=599) or None,
        reason=fields.optional_text("reason"),
        upstream_headers={
            str(k).lower(): str(v) for k, v in _mapping(fields, "upstream_headers").items()
        },
        client_headers={
            str(k).lower(): str(v) for k, v in _mapping(fields, "client_headers").items()
        },
    )


def _mapping(fields: Fields, key: str) -> dict[object, object]:
    value = fields.raw.get(key) or {}
    if not isinstance(value, dict):
        raise fields.error(key, "expected a mapping")
    return value


def cases_from_document(doc: YamlDocument) -> list[PolicyCase]:
    top = Fields(doc, (), doc.data, {"tests"})
    return [
        case_from_fields(Fields(doc, path, raw, CASE_KEYS))
        for path, raw in top.mapping_list("tests")
    ]
