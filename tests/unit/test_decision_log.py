"""The decision log's line is exactly the JSON object it stands for, whatever the values."""

from __future__ import annotations

import json

import pytest

from admitd.core.context import RequestContext
from admitd.core.decision import Decision, Reason
from admitd.core.identity import ClientIdentity
from admitd.logs import DecisionLog

AWKWARD = [
    'quote " and backslash \\',
    "newline \n tab \t nul \x00 del \x7f",
    "non-ASCII: café 日本 \u2028 \U0001f600",
    "",
    "</script>{}[]",
]


def one_line(ctx: RequestContext, decision: Decision, source: str = "peer") -> str:
    written: list[str] = []
    log = DecisionLog(written.append, batch=1)
    log.record(ctx, decision, source, 0.000123)
    (line,) = "".join(written).splitlines()  # one line: nothing unescaped broke it
    return line


@pytest.mark.parametrize("value", AWKWARD)
def test_every_field_round_trips_through_json(value: str) -> None:
    identity = ClientIdentity(
        "ab" * 32, "cd" * 32, "01", f"CN={value}", (f"spiffe://x/{value}",), ()
    )
    ctx = RequestContext(
        method=value,
        scheme="https",
        host=value,
        path=f"/p/{value}?token=secret",
        headers={"x-request-id": value},
        request_id=value,
    )
    decision = Decision(
        allowed=False,
        reason=Reason.IDENTITY_NOT_ALLOWED,
        route=value,
        identity=identity,
        policy_version=value,
        shadow_reason=Reason.ALLOWED,
        log_detail=value,
    )
    line = one_line(ctx, decision, source=value)
    assert line.isascii()
    fields = json.loads(line)
    assert fields["method"] == fields["host"] == fields["route"] == value[:255]
    assert fields["request_id"] == value[:128] and fields["detail"] == value
    assert fields["principal"] == f"spiffe://x/{value}" and fields["cert_source"] == value
    assert fields["path"] == f"/p/{value}"[:512] and "secret" not in line
    assert fields["shadow_reason"] == "allowed" and fields["status"] == decision.status
    assert fields["duration_us"] == 123 and fields["decision"] == decision.audit_verdict
    assert isinstance(fields["ts"], float)


def test_a_decision_without_identity_logs_empty_strings() -> None:
    ctx = RequestContext(method="GET", scheme="https", host="h", path="/")
    fields = json.loads(one_line(ctx, Decision(allowed=True, reason=Reason.ALLOWED), source=""))
    assert (fields["principal"], fields["cert_sha256"], fields["shadow_reason"]) == ("", "", "")
    assert list(fields) == [
        "ts", "level", "logger", "event", "decision", "reason", "status", "route",
        "principal", "cert_sha256", "cert_source", "method", "host", "path", "request_id",
        "policy_version", "shadow_reason", "detail", "duration_us",
    ]  # fmt: skip
