"""Reused CheckResponses: two decisions that answer differently never share one."""

from __future__ import annotations

from dataclasses import replace

from admitd.core.decision import Decision, Reason
from admitd.extauthz.response import check_response_from_decision

STEP_UP = Decision(
    allowed=False,
    reason=Reason.MFA_STEP_UP_REQUIRED,
    message="A second-factor verification within the last 900 seconds is required.",
    client_headers=(("x-admitd-reason", "mfa_step_up_required"),),
    details=(("max_age", 900),),
)


def test_a_strict_rfc_9470_step_up_is_not_answered_from_a_cached_428() -> None:
    session_user = check_response_from_decision(STEP_UP)
    strict_client = check_response_from_decision(replace(STEP_UP, status_override=401))
    assert session_user.denied_response.status.code == 428
    assert strict_client.denied_response.status.code == 401
    # and the other way round, now that both are cached
    assert check_response_from_decision(STEP_UP).denied_response.status.code == 428


def test_identical_decisions_share_one_response() -> None:
    assert check_response_from_decision(STEP_UP) is check_response_from_decision(
        replace(STEP_UP, log_detail="only for the log")
    )
