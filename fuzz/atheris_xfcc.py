"""atheris: `parse_xfcc` (x-forwarded-client-cert) raises only XfccError, on any text."""

from __future__ import annotations

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from admitd.certs.xfcc import XfccError, parse_xfcc

SEEDS = [
    b'By=spiffe://test.example/proxy/edge;Hash=ab12;Cert="-----BEGIN%20CERTIFICATE-----";URI=spiffe://x',
    b'Hash=1;DNS=a;DNS=b,By=x;Subject="CN=a,O=\\"b\\""',
    b'Chain="a;b,c";Cert=""',
]


def one_input(data: bytes) -> None:
    header = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    try:
        elements = parse_xfcc(header)
    except XfccError:
        return
    except Exception as exc:
        if tolerated(exc):
            return
        raise
    assert all(elements) and len(elements) <= 16


if __name__ == "__main__":
    main("xfcc", one_input, SEEDS)
