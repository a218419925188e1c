"""atheris: a serialised CheckRequest (any bytes that parse as one) through the whole Check
in-process, on the certificate-only policy: never the fail-closed path, never
`authorization_unavailable`, and nothing admitted that the oracle (tests/fuzz/oracle.py)
would refuse. Half the inputs are mutations of a valid request (tests/fuzz/check_requests.py)
seeded from the fuzzer's bytes, so deep paths are reached quickly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
from pathlib import Path
from unittest.mock import Mock

import atheris
from harness import main

with atheris.instrument_imports(include=["admitd"]):
    from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
    from google.protobuf.message import DecodeError
    from prometheus_client import CollectorRegistry

    from admitd.extauthz.request import context_from_check_request
    from admitd.extauthz.service import AuthorizationService
    from admitd.logs import DecisionLog
    from admitd.metrics import Metrics

from cryptography.hazmat.primitives.serialization import Encoding

from tests.fuzz.check_requests import RequestSpec, mutated
from tests.fuzz.oracle import ALICE, BOB, CERT_ONLY_POLICY, CertOnlyOracle
from tests.fuzz.responses import FAIL_CLOSED_LOG, outcome_of
from tests.pki_fixtures import build_test_pki, url_pem
from tests.unit.helpers import engine_for

WORK = Path(tempfile.mkdtemp(prefix="admitd-fuzz-check-"))
PKI = build_test_pki(WORK / "pki")
(WORK / "policies").mkdir()
(WORK / "policies" / "routes.yaml").write_text(CERT_ONLY_POLICY)
ENGINE, _ = engine_for(PKI.trust_bundle, WORK / "policies", crl_files=[PKI.crl])
SERVICE = AuthorizationService(ENGINE, Metrics(CollectorRegistry()), DecisionLog())
ORACLE = CertOnlyOracle(
    {PKI.alice.cert.public_bytes(Encoding.DER): ALICE, PKI.bob.cert.public_bytes(Encoding.DER): BOB}
)
GOLDEN = RequestSpec.golden(url_pem(PKI.alice))
OTHERS = [url_pem(i) for i in (PKI.bob, PKI.expired, PKI.untrusted, PKI.revoked, PKI.no_client_eku)]
LOOP = asyncio.new_event_loop()
SEEDS = [b"\x00" + GOLDEN.to_proto().SerializeToString(), b"\x01seed"]


class _FailClosed(logging.Handler):
    """Keeps fail-closed log lines (logging swallows what a handler raises)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == FAIL_CLOSED_LOG:
            self.seen.append(record)


FAIL_CLOSED = _FailClosed()
logging.getLogger("admitd.extauthz.service").addHandler(FAIL_CLOSED)
logging.getLogger("admitd.decision").setLevel(logging.WARNING)  # one line per Check otherwise


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] % 2 == 0:
        try:
            request = CheckRequest.FromString(data[1:])
        except DecodeError:
            return
        spec = None
    else:
        rnd = random.Random(data[1:])  # noqa: S311 (fuzz input, not a secret)
        spec = mutated(GOLDEN, rnd, other_certificates=OTHERS)
        request = spec.to_proto()
    context_from_check_request(request)
    outcome = outcome_of(LOOP.run_until_complete(SERVICE.Check(request, Mock())))
    if FAIL_CLOSED.seen:
        record = FAIL_CLOSED.seen.pop()
        raise AssertionError(
            f"fail-closed path reached: {logging.Formatter().formatException(record.exc_info)}"
            if record.exc_info
            else "fail-closed path reached"
        )
    assert not outcome.is_internal_error, outcome
    if spec is not None and outcome.allowed:
        assert ORACLE.may_allow(
            method=spec.method,
            path=spec.path,
            scheme=spec.scheme,
            headers=spec.header_pairs(),
            certificate=spec.certificate,
            route_name=spec.context_extensions.get("admitd_route", ""),
        ), f"wrong allow: {spec!r}"


if __name__ == "__main__":
    main("check_request", one_input, SEEDS)
