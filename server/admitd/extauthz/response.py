"""Decision -> CheckResponse: OK with upstream headers, or a denial with status and JSON body."""

from __future__ import annotations

import json

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.auth.v3.external_auth_pb2 import (
    CheckResponse,
    DeniedHttpResponse,
    OkHttpResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus
from google.protobuf.struct_pb2 import Struct
from google.rpc import code_pb2, status_pb2

from admitd.core.decision import Decision

__all__ = ["check_response_from_decision", "denial_body", "header_options"]

_OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_DENIAL_HEADERS = (("content-type", "application/json"), ("cache-control", "no-store"))


_CACHE_LIMIT = 4096
_cache: dict[tuple[object, ...], CheckResponse] = {}


def check_response_from_decision(decision: Decision) -> CheckResponse:
    """The response for a decision; identical decisions share one (never mutated) message.

    Building protobuf messages costs more than the rest of a Check, and most
    traffic repeats a few (route, principal) pairs, so the built message is reused.
    """
    key = (
        decision.allowed,
        decision.status,  # the reason's, or 401 for a strict RFC 9470 credential, or 302
        decision.reason,
        decision.message,
        decision.upstream_headers,
        decision.client_headers,
        decision.headers_to_remove,
        decision.details,
        decision.redirect_to,
        decision.client_ok_headers,
    )
    response = _cache.get(key)
    if response is None:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        response = _cache[key] = _build(decision)
    return response


def _build(decision: Decision) -> CheckResponse:
    if decision.allowed:
        return CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=OkHttpResponse(
                headers=header_options(decision.upstream_headers),
                headers_to_remove=list(decision.headers_to_remove),
                response_headers_to_add=header_options(decision.client_ok_headers),
            ),
            dynamic_metadata=_metadata(decision),
        )
    return CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED),
        denied_response=DeniedHttpResponse(
            # HttpStatus is an open enum: 495 is not listed, but Envoy passes it through.
            status=HttpStatus(code=decision.status),
            headers=header_options((*_DENIAL_HEADERS, *decision.client_headers)),
            body=denial_body(decision),
        ),
    )


def denial_body(decision: Decision) -> str:
    error: dict[str, str | int] = {"code": decision.code, "message": decision.message}
    if decision.code != decision.reason.value:
        error["reason"] = decision.reason.value
    error.update(decision.details)
    return json.dumps({"error": error}, separators=(",", ":"))


def header_options(headers: tuple[tuple[str, str], ...]) -> list[HeaderValueOption]:
    return [
        HeaderValueOption(header=HeaderValue(key=key, value=value), append_action=_OVERWRITE)
        for key, value in headers
    ]


def _metadata(decision: Decision) -> Struct | None:
    """ext_authz dynamic metadata (the filter's namespace), for access logs and later filters."""
    if decision.risk is None:
        return None
    metadata = Struct()
    metadata.update(
        {"risk_level": decision.risk.level.value, "risk_signals": decision.risk.signal_names}
    )
    return metadata
