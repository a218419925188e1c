"""CEL conditions that fail to evaluate: a false condition for the client, the error in the log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from unittest.mock import Mock

import pytest
from prometheus_client import CollectorRegistry

from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.policy.rules import compile_condition
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for
from tests.unit.test_check_service import golden_request

POLICY = """
routes:
  - name: enforced
    match: {path_prefix: /e/}
    identities: any
    conditions: [{condition}]
  - name: trial
    match: {path_prefix: /s/}
    identities: any
    shadow: true
    conditions: [{condition}]
"""

# Each condition fails to evaluate for a request carrying `x-n: <value>`.
ERRORS = [
    pytest.param('10 / int(request.headers["x-n"]) > 1', "0", "division by zero", id="div-zero"),
    pytest.param(
        'int(request.headers["x-n"]) + 9223372036854775807 > 0', "1", "overflow", id="overflow"
    ),
    pytest.param(
        '-9223372036854775808 / int(request.headers["x-n"]) < 0', "-1", "overflow", id="int-min-div"
    ),
    pytest.param('[1][int(request.headers["x-n"])] == 1', "5", "index out of bounds", id="index"),
    pytest.param('request.headers["x-missing"] == "a"', "1", "x-missing", id="missing-key"),
    pytest.param(
        'request.method + int(request.headers["x-n"]) == 2', "1", "string + int", id="type"
    ),
    pytest.param('int(request.headers["x-n"]) == 1', "abc", "invalid digit", id="parse"),
    pytest.param('uint(int(request.headers["x-n"])) == 1u', "-1", "overflow", id="uint"),
]


def service_for(
    pki: PkiSet, tmp_path: Path, condition: str
) -> tuple[AuthorizationService, list[str]]:
    (tmp_path / "p.yaml").write_text(POLICY.replace("{condition}", json.dumps(condition)))
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    lines: list[str] = []
    log = DecisionLog(lines.append, batch=1)
    return AuthorizationService(engine, Metrics(CollectorRegistry()), log), lines


def logged(lines: list[str]) -> dict[str, object]:
    entry = json.loads(lines[-1])
    assert isinstance(entry, dict)
    return entry


@pytest.mark.parametrize(("condition", "value", "error"), ERRORS)
async def test_an_erroring_condition_is_a_403_with_the_error_only_in_the_log(
    pki: PkiSet,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    condition: str,
    value: str,
    error: str,
) -> None:
    service, lines = service_for(pki, tmp_path, condition)
    with caplog.at_level(logging.ERROR):
        response = await service.Check(
            golden_request(url_pem(pki.alice), path="/e/x", **{"x-n": value}), Mock()
        )
    denied = response.denied_response
    assert denied.status.code == 403, denied
    body = json.loads(denied.body)
    assert body["error"]["code"] == "condition_failed"
    assert error.lower() not in denied.body.lower() and "cel" not in denied.body.lower()
    assert not caplog.records  # no "Check failed" traceback: it is a decision, not a crash
    entry = logged(lines)
    assert entry["reason"] == "condition_failed"
    assert error.lower() in str(entry["detail"]).lower()


@pytest.mark.parametrize(("condition", "value", "error"), ERRORS)
async def test_an_erroring_condition_on_a_shadow_route_admits_and_logs_the_error(
    pki: PkiSet, tmp_path: Path, condition: str, value: str, error: str
) -> None:
    service, lines = service_for(pki, tmp_path, condition)
    response = await service.Check(
        golden_request(url_pem(pki.alice), path="/s/x", **{"x-n": value}), Mock()
    )
    assert response.HasField("ok_response"), response
    entry = logged(lines)
    assert (entry["decision"], entry["shadow_reason"]) == ("allow", "condition_failed")
    assert error.lower() in str(entry["detail"]).lower()


def test_a_non_boolean_result_is_false_and_says_so() -> None:
    condition = compile_condition("request.method")
    assert condition.failure({"request": {"method": "GET"}}) == "evaluated to a string, not a bool"
    assert not condition.holds({"request": {"method": "GET"}})


def test_a_true_condition_has_no_failure() -> None:
    condition = compile_condition('request.method == "GET"')
    assert condition.failure({"request": {"method": "GET"}}) is None
    assert condition.holds({"request": {"method": "GET"}})


async def test_a_condition_that_holds_logs_no_detail(pki: PkiSet, tmp_path: Path) -> None:
    service, lines = service_for(pki, tmp_path, 'int(request.headers["x-n"]) == 1')
    response = await service.Check(
        golden_request(url_pem(pki.alice), path="/e/x", **{"x-n": "1"}), Mock()
    )
    assert response.HasField("ok_response")
    assert logged(lines)["detail"] == ""
