from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admitd.certs.xfcc import XfccError, parse_xfcc


def test_parses_envoy_element_with_quoted_values() -> None:
    header = 'By=spiffe://mesh/edge;Hash=ab12;Cert="a%2Cb;c";Subject="CN=x, O=\\"q\\"";URI=spiffe://t/u;DNS=a;DNS=b'
    (element,) = parse_xfcc(header)
    assert element == {
        "by": "spiffe://mesh/edge",
        "hash": "ab12",
        "cert": "a%2Cb;c",
        "subject": 'CN=x, O="q"',
        "uri": "spiffe://t/u",
        "dns": "a,b",
    }


def test_keeps_elements_in_order() -> None:
    elements = parse_xfcc('Hash=1;URI=a,Hash=2;Subject="x,y"')
    assert [e["hash"] for e in elements] == ["1", "2"]
    assert elements[1]["subject"] == "x,y"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('Hash=1;Cert="unterminated', id="unbalanced-quote"),
        pytest.param("Hash=1;Bogus=2", id="unknown-key"),
        pytest.param("Hash", id="no-equals"),
        pytest.param("Hash=1;Hash=2", id="duplicate-key"),
        pytest.param('Hash=a"b', id="stray-quote"),
    ],
)
def test_rejects_malformed(header: str) -> None:
    with pytest.raises(XfccError):
        parse_xfcc(header)


def test_limits_element_count() -> None:
    with pytest.raises(XfccError, match="more than 16"):
        parse_xfcc(",".join(["Hash=1"] * 17))


_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), max_size=30
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["hash", "cert", "uri", "by", "subject"]), _values),
        min_size=1,
        max_size=5,
        unique_by=lambda kv: kv[0],
    )
)
def test_quoted_values_round_trip(pairs: list[tuple[str, str]]) -> None:
    header = ";".join(f'{k}="{v}"' for k, v in pairs)
    assert parse_xfcc(header) == [dict(pairs)]


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_xfcc_error(header: str) -> None:
    try:
        result = parse_xfcc(header)
    except XfccError:
        return
    assert all(isinstance(e, dict) and e for e in result)
