"""Read a CheckResponse back: allowed or not, the reason code and the HTTP status."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from envoy.service.auth.v3.external_auth_pb2 import CheckResponse

__all__ = ["FAIL_CLOSED_LOG", "Outcome", "outcome_of"]

FAIL_CLOSED_LOG = "Check failed; answering fail-closed"
INTERNAL_REASON = "authorization_unavailable"
_PAGE_REASON = re.compile(r"<dt>Reason</dt><dd>([a-z_]+)</dd>")


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    reason: str  # "allowed" for an allow; the denial's reason code otherwise
    status: int

    @property
    def is_internal_error(self) -> bool:
        return self.reason == INTERNAL_REASON or self.status == 503


def outcome_of(response: CheckResponse) -> Outcome:
    if response.HasField("ok_response") and response.status.code == 0:
        return Outcome(True, "allowed", 200)
    denied = response.denied_response
    headers = {option.header.key: option.header.value for option in denied.headers}
    reason = headers.get("x-admitd-reason", "")
    if not reason and denied.body.startswith("{"):
        error = json.loads(denied.body)["error"]
        reason = str(error.get("reason", error["code"]))
    elif not reason:
        page = _PAGE_REASON.search(denied.body)
        reason = page.group(1) if page else ""
    return Outcome(False, reason, denied.status.code)
