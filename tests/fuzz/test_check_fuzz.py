"""Fuzz the CheckRequest conversion and the whole Check on a certificate-only route, in-process.

Correct means: `context_from_check_request` never raises (problems go into `malformed`), and
`AuthorizationService.Check` answers every mutated request with a specific reason: it never
takes the fail-closed exception path (no "Check failed; answering fail-closed" line, no
`authorization_unavailable`), and admits nothing the independent oracle would refuse.
"""

from __future__ import annotations

import logging
import random
from unittest.mock import Mock

import pytest
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from admitd.core.context import RequestContext
from admitd.extauthz.request import context_from_check_request
from admitd.extauthz.service import AuthorizationService
from tests.fuzz.budget import FUZZ, bounded, bounded_async
from tests.fuzz.check_requests import RequestSpec, mutated
from tests.fuzz.oracle import CertOnlyOracle
from tests.fuzz.responses import FAIL_CLOSED_LOG, outcome_of

pytestmark = pytest.mark.timeout(120)

_CONTROL = {chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F)}
# Any text protobuf accepts in a string field: every code point but the surrogates.
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
_HEADERS = st.dictionaries(_TEXT, _TEXT, max_size=12)
_RAW_HEADERS = st.lists(st.tuples(_TEXT, st.binary(max_size=80)), max_size=12)


def _assert_sane(ctx: RequestContext) -> None:
    """What the conversion promises whatever came in: problems are named, not raised."""
    assert isinstance(ctx, RequestContext)
    if not ctx.method or not ctx.path:
        assert ctx.malformed
    texts = [*ctx.headers, *ctx.headers.values()]
    if any(char in _CONTROL for text in texts for char in text):
        assert ctx.malformed, "a control character in a header was not refused"
    path = ctx.path.split("?", 1)[0]
    if any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/")):
        assert ctx.malformed, f"dot segment in {ctx.path!r} not refused"


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_mutated_requests_convert_without_raising(
    golden: RequestSpec, other_certificates: tuple[str, ...], rnd: random.Random
) -> None:
    spec = mutated(golden, rnd, other_certificates=other_certificates)
    request = spec.to_proto()
    _assert_sane(bounded(lambda: context_from_check_request(request), "conversion"))


@FUZZ
@given(
    method=_TEXT,
    path=_TEXT,
    host=_TEXT,
    scheme=_TEXT,
    headers=_HEADERS,
    raw_headers=_RAW_HEADERS,
    certificate=_TEXT,
    address=_TEXT,
    extensions=_HEADERS,
)
def test_arbitrary_field_values_convert_without_raising(
    method: str,
    path: str,
    host: str,
    scheme: str,
    headers: dict[str, str],
    raw_headers: list[tuple[str, bytes]],
    certificate: str,
    address: str,
    extensions: dict[str, str],
) -> None:
    spec = RequestSpec(
        method, path, host, scheme, headers, raw_headers, certificate, address, extensions
    )
    request = spec.to_proto()
    _assert_sane(bounded(lambda: context_from_check_request(request), "conversion"))


@FUZZ
@given(data=st.data())
def test_wire_level_mutations_convert_without_raising(
    golden: RequestSpec, data: st.DataObject
) -> None:
    """Bytes of a serialised request flipped, cut or spliced: what still parses converts."""
    blob = bytearray(golden.to_proto().SerializeToString())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(blob)), label="at")
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="kind")
        if kind == "flip" and at < len(blob):
            blob[at] ^= data.draw(st.integers(1, 255), label="mask")
        elif kind == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
        elif kind == "delete":
            del blob[at : at + data.draw(st.integers(1, 8), label="deleted")]
        else:
            del blob[at:]
    try:
        request = CheckRequest.FromString(bytes(blob))
    except DecodeError:
        return  # gRPC refuses it before admitd sees it
    _assert_sane(bounded(lambda: context_from_check_request(request), "conversion"))


def test_partial_requests_convert_without_raising() -> None:
    """Missing fields: an empty message, attributes without http, http without headers."""
    empty = CheckRequest()
    no_http = CheckRequest()
    no_http.attributes.source.certificate = "x"
    no_headers = CheckRequest()
    no_headers.attributes.request.http.method = "GET"
    no_headers.attributes.request.http.path = "/api/x"
    for request in (empty, no_http, no_headers):
        ctx = context_from_check_request(request)
        _assert_sane(ctx)
        assert ctx.malformed or ctx.host == ""


async def _check(
    service: AuthorizationService,
    spec: RequestSpec,
    oracle: CertOnlyOracle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    request = spec.to_proto()
    with caplog.at_level(logging.ERROR, logger="admitd.extauthz.service"):
        response = await bounded_async(lambda: service.Check(request, Mock()), "Check")
    failed = [r for r in caplog.records if r.getMessage() == FAIL_CLOSED_LOG]
    assert not failed, f"fail-closed path reached by {spec.mutations}: {failed[0].exc_text}"
    outcome = outcome_of(response)
    assert not outcome.is_internal_error, f"{spec.mutations} got {outcome}"
    assert outcome.reason, f"{spec.mutations}: a denial without a reason code"
    if outcome.allowed:
        assert oracle.may_allow(
            method=spec.method,
            path=spec.path,
            scheme=spec.scheme,
            headers=spec.header_pairs(),
            certificate=spec.certificate,
            route_name=spec.context_extensions.get("admitd_route", ""),
        ), f"wrong allow: {spec!r}"


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
async def test_mutated_checks_get_a_specific_answer_and_no_wrong_allow(
    check_service: AuthorizationService,
    golden: RequestSpec,
    other_certificates: tuple[str, ...],
    oracle: CertOnlyOracle,
    caplog: pytest.LogCaptureFixture,
    rnd: random.Random,
) -> None:
    spec = mutated(golden, rnd, other_certificates=other_certificates)
    await _check(check_service, spec, oracle, caplog)


async def test_the_golden_request_is_admitted(
    check_service: AuthorizationService, golden: RequestSpec, oracle: CertOnlyOracle
) -> None:
    """The fuzz above is not vacuous: unmutated, the request is admitted, and the oracle agrees."""
    response = await check_service.Check(golden.to_proto(), Mock())
    assert outcome_of(response).allowed
    assert oracle.may_allow(
        method="GET",
        path=golden.path,
        scheme="https",
        headers=golden.header_pairs(),
        certificate=golden.certificate,
    )


async def test_the_harness_sees_the_fail_closed_path(
    check_service: AuthorizationService,
    golden: RequestSpec,
    oracle: CertOnlyOracle,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_check` can fail: an engine that raises is seen through the log line."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(check_service._engine, "check", broken)
    with pytest.raises(AssertionError, match="fail-closed path reached"):
        await _check(check_service, golden, oracle, caplog)
