"""certs/outer_der.py: the outer Certificate SEQUENCE, decoded with its real length rules."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from admitd.certs.outer_der import outer_der_problem
from tests.fuzz.der import tlv
from tests.pki_fixtures import PkiSet

_TBS = tlv(0x30, b"\x02\x01\x01")  # stand-ins: only the headers are read
_ALGORITHM = bytes.fromhex("300a06082a8648ce3d040302")
_SIGNATURE = tlv(0x03, b"\x00" + b"\x30" * 70)


def test_issued_certificates_have_no_problem(pki: PkiSet) -> None:
    for issued in (pki.alice, pki.client_ca, pki.root, pki.server):
        der = issued.cert.public_bytes(Encoding.DER)
        assert der[1] == 0x82  # long-form lengths: every real certificate has them
        assert outer_der_problem(der) is None


def test_a_short_form_certificate_has_no_problem() -> None:
    assert outer_der_problem(tlv(0x30, _TBS + _ALGORITHM + _SIGNATURE)) is None


@pytest.mark.parametrize(
    ("der", "problem"),
    [
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + tlv(0x03, b"\x01\x00")), "unused bits", id="1-bit"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + tlv(0x03, b"\x07\x80")), "unused bits", id="7-bits"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + tlv(0x03, b"")), "unused bits", id="empty-bits"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + tlv(0x04, b"\x00")), "signatureValue", id="not-bits"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM), "signatureValue", id="two-elements"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + _SIGNATURE + _SIGNATURE), "signatureValue", id="four"),
        pytest.param(tlv(0x31, _TBS + _ALGORITHM + _SIGNATURE), "SEQUENCE", id="a-set"),
        pytest.param(tlv(0x30, _TBS + _ALGORITHM + _SIGNATURE) + b"\x00", "SEQUENCE", id="trailing"),
        pytest.param(b"", "truncated", id="empty"),
        pytest.param(b"\x30", "truncated", id="tag-only"),
        pytest.param(b"\x30\x80" + _TBS + b"\x00\x00", "bad length", id="indefinite"),
        pytest.param(b"\x30\x85" + b"\x01" * 5, "bad length", id="5-length-octets"),
        pytest.param(b"\x30\x81\x05" + _TBS, "shortest form", id="long-form-for-short"),
        pytest.param(b"\x30\x82\x00\x85" + b"\x00" * 0x85, "shortest form", id="leading-zero"),
        pytest.param(b"\x30\x82\x01\x00" + _TBS, "past the end", id="overlong"),
        pytest.param(b"\x30\x05\x30\x09\x02\x01\x01", "past the end", id="inner-overlong"),
        pytest.param(b"\x1f\x01\x00", "high tag", id="high-tag"),
    ],
)  # fmt: skip
def test_what_does_not_decode_or_is_re_spelled_is_named(der: bytes, problem: str) -> None:
    found = outer_der_problem(der)
    assert found is not None and problem in found, found


@given(st.binary(max_size=200))
def test_any_bytes_give_an_answer_never_an_exception(blob: bytes) -> None:
    if outer_der_problem(blob) is None:  # only three elements in one SEQUENCE can pass
        assert blob[0] == 0x30
