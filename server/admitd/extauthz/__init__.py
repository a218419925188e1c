"""The only package that touches Envoy's protobuf types."""

from __future__ import annotations

from admitd.extauthz.request import context_from_check_request
from admitd.extauthz.response import check_response_from_decision

__all__ = ["check_response_from_decision", "context_from_check_request"]
