"""`admitd policy test | explain | schema` and the shipped policies' own cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from admitd.cli import main
from admitd.policy import loader
from admitd.policy.schema import policy_schema

POLICIES = Path(__file__).parents[2] / "policies"


def test_shipped_policy_cases_pass_and_cover_every_route(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policy", "test", str(POLICIES), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    cases = (POLICIES / "routes.test.yaml").read_text()
    for route in loader.load_policies(POLICIES).routes:
        assert f"/{route.name}" in cases or route.name == "healthz", (
            f"no case for route {route.name}"
        )


def test_a_failing_case_prints_a_diff_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text(
        "routes: [{name: api, match: {path_prefix: /api/}, identities: any}]\n"
    )
    (tmp_path / "p.test.yaml").write_text(
        "tests:\n  - name: wrong on purpose\n    request: {path: /api/x}\n    principal: spiffe://x/y\n"
        "    expect: {status: 403, upstream_headers: {x-admitd-route: other}}\n"
    )
    assert main(["policy", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong on purpose (" in out and "p.test.yaml:2)" in out
    assert "status: expected 403, got 200" in out
    assert "upstream header x-admitd-route: expected 'other', got 'api'" in out


def test_explain_names_route_requirements_and_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "req.yaml"
    request.write_text(
        "request: {method: GET, path: /finance/ledger}\nprincipal: spiffe://admitd.dev/user/alice\n"
        "session: {user: fin, roles: [finance], mfa_age: 3600, factors: [totp]}\n"
    )
    assert main(["policy", "explain", "--request", str(request), "--policies", str(POLICIES)]) == 0
    out = capsys.readouterr().out
    assert "route: finance" in out
    assert "MFA max age: 900s; session MFA age: 3600" in out
    assert "decision: DENY 428 (mfa_step_up_required)" in out


def test_committed_schema_is_current() -> None:
    committed = json.loads((POLICIES / "schema.json").read_text())
    assert committed == policy_schema(), "regenerate: admitd policy schema > policies/schema.json"


def test_schema_describes_exactly_the_loader_keys() -> None:
    schema = policy_schema()
    route = schema["properties"]["routes"]["items"]
    assert set(schema["properties"]) == loader.FILE_KEYS
    assert set(route["properties"]) == loader.ROUTE_KEYS
    assert set(route["properties"]["match"]["properties"]) == loader.MATCH_KEYS


def test_policy_cases_strip_the_session_credentials_as_production_does(tmp_path: Path) -> None:
    from admitd.core.mfa_rules import MfaRules
    from admitd.policy.loader import load_policies
    from admitd.policy.testing import load_cases, run_case
    from admitd.sessions.tokens import new_session_token

    token, _ = new_session_token("u")
    (tmp_path / "p.yaml").write_text("routes:\n  - {name: r, identities: any, session: optional}\n")
    (tmp_path / "p.test.yaml").write_text(
        "tests:\n  - name: strip\n    request:\n      path: /x\n      headers:\n"
        f"        cookie: 'theme=dark; __Host-admitd_session={token}'\n"
        f"        authorization: 'Bearer {token}'\n"
        "    principal: spiffe://t/u\n"
        "    expect: {status: 200, upstream_headers: {cookie: theme=dark}}\n"
    )
    (case,) = load_cases(tmp_path)
    result = run_case(case, load_policies(tmp_path / "p.yaml"), MfaRules())
    assert result.passed, result.differences
    assert "authorization" in result.decision.headers_to_remove
