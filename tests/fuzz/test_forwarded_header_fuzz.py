"""Fuzz the forwarded-certificate header parsers: XFCC and RFC 9440 `Client-Cert(-Chain)`.

Correct means: `parse_xfcc` raises only `XfccError`, the RFC 9440 readers only
`Rfc9440Error`, `chain_from_forwarded` only `ForwardedCertificateError`; what a grammar
writes is read back as written (round trip); and no input takes over a second, however long.
"""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from admitd.certs.forwarding import ForwardedCertificateError, ForwardHeader, chain_from_forwarded
from admitd.certs.rfc9440 import Rfc9440Error, der_from_client_cert, ders_from_client_cert_chain
from admitd.certs.xfcc import XfccError, parse_xfcc
from tests.fuzz.budget import FUZZ, bounded
from tests.pki_fixtures import PkiSet, url_pem

pytestmark = pytest.mark.timeout(120)

_XFCC_CHARS = st.sampled_from(list('=;,"\\ \tabcAB09%:/.\u00e9\x00'))
_XFCC_NOISE = st.text(_XFCC_CHARS, max_size=200)
_KEYS = ["By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS", "hash", "uri"]
# Values as a proxy would write them: quoted (with \" inside) or bare (no separators).
_BARE = st.text(
    st.characters(exclude_characters='",;=\\', exclude_categories=["Cs"]), min_size=1, max_size=30
)
_QUOTED = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _xfcc_elements(draw: st.DrawFn) -> list[dict[str, str]]:
    keys = ["by", "hash", "cert", "chain", "subject", "uri"]
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        chosen = draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True))
        elements.append({key: draw(st.one_of(_BARE, _QUOTED)) for key in chosen})
    return elements


@FUZZ
@given(elements=_xfcc_elements(), quote_all=st.booleans())
def test_xfcc_written_by_the_grammar_reads_back(
    elements: list[dict[str, str]], quote_all: bool
) -> None:
    def written(value: str) -> str:
        plain = value.strip() == value and value and not any(c in value for c in '",;=\\')
        return value if plain and not quote_all else _quote(value)

    header = ",".join(";".join(f"{k}={written(v)}" for k, v in e.items()) for e in elements)
    try:
        parsed = bounded(lambda: parse_xfcc(header), "parse_xfcc")
    except XfccError as exc:
        # Only a backslash in a value is beyond what the parser promises (Envoy never writes one).
        assert any("\\" in v for e in elements for v in e.values()), exc
        return
    if not any("\\" in v for e in elements for v in e.values()):
        assert [dict(e) for e in parsed] == elements


@FUZZ
@given(
    parts=st.lists(
        st.one_of(
            _XFCC_NOISE,
            st.builds(
                lambda k, v: f"{k}={v}",
                st.sampled_from(_KEYS),
                st.one_of(_BARE, _QUOTED.map(_quote)),
            ),
        ),
        max_size=30,
    ),
    separators=st.lists(st.sampled_from([";", ",", "", '"', " "]), min_size=30, max_size=30),
)
def test_xfcc_noise_parses_or_raises_xfcc_error(parts: list[str], separators: list[str]) -> None:
    header = "".join(p + s for p, s in zip(parts, separators, strict=False))
    with contextlib.suppress(XfccError):
        elements = bounded(lambda: parse_xfcc(header), "parse_xfcc")
        assert all(elements) and len(elements) <= 16


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("," * 100_000, id="commas"),
        pytest.param('"' * 100_001, id="quotes"),
        pytest.param("Hash=" + "a" * 100_000, id="long-value"),
        pytest.param(";".join(["By=x"] * 20_000), id="many-pairs"),
        pytest.param("\\" * 100_000, id="backslashes"),
        pytest.param('Cert="' + '\\"' * 50_000 + '"', id="escaped-quotes"),
    ],
)
def test_huge_xfcc_headers_are_bounded(header: str) -> None:
    with contextlib.suppress(XfccError):
        bounded(lambda: parse_xfcc(header), "parse_xfcc")


_SF_CHARS = st.sampled_from(list(":;,= \tABCabc+/09=\x00\u00e9"))


@FUZZ
@given(blobs=st.lists(st.binary(max_size=200), min_size=1, max_size=9), params=st.booleans())
def test_rfc9440_byte_sequences_round_trip(blobs: list[bytes], params: bool) -> None:
    items = [f":{base64.b64encode(b).decode()}:" + (";k=v" if params else "") for b in blobs]
    assert bounded(lambda: der_from_client_cert(items[0]), "Client-Cert") == blobs[0]
    chain = ", ".join(items)
    if len(blobs) > 8:
        with pytest.raises(Rfc9440Error):
            ders_from_client_cert_chain(chain, max_count=8)
    else:
        assert ders_from_client_cert_chain(chain, max_count=8) == blobs


@FUZZ
@given(text=st.one_of(st.text(_SF_CHARS, max_size=300), st.text(max_size=300)))
def test_rfc9440_noise_raises_only_rfc9440_error(text: str) -> None:
    with contextlib.suppress(Rfc9440Error):
        assert isinstance(bounded(lambda: der_from_client_cert(text), "Client-Cert"), bytes)
    with contextlib.suppress(Rfc9440Error):
        ders = bounded(lambda: ders_from_client_cert_chain(text, max_count=8), "Client-Cert-Chain")
        assert len(ders) <= 8


@FUZZ
@given(
    header=st.sampled_from(list(ForwardHeader)),
    data=st.data(),
)
def test_chain_from_forwarded_raises_only_its_own_error(
    pki: PkiSet, header: ForwardHeader, data: st.DataObject
) -> None:
    """Real values, then cut and spliced: every failure is a ForwardedCertificateError."""
    leaf = url_pem(pki.alice, pki.client_ca)
    der = base64.b64encode(pki.alice.cert.public_bytes(Encoding.DER)).decode()
    seeds = {
        ForwardHeader.XFCC: (f'Hash=ab;Cert="{leaf}";URI=spiffe://x,By=y;Chain="{leaf}"', ""),
        ForwardHeader.X_CLIENT_CERT: (leaf, ""),
        ForwardHeader.CLIENT_CERT: (f":{der}:", f":{der}:, :{der}:"),
    }
    primary, secondary = seeds[header]
    cut = data.draw(st.integers(0, len(primary)), label="cut")
    insert = data.draw(st.text(_SF_CHARS, max_size=5), label="insert")
    values = (primary[:cut] + insert + primary[cut + len(insert) :], secondary)
    try:
        chain = bounded(
            lambda: chain_from_forwarded(header, values, peer_fingerprint="ab", max_count=8),
            "chain_from_forwarded",
        )
    except ForwardedCertificateError:
        return
    assert 1 <= len(chain) <= 8
