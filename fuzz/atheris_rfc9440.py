"""atheris: RFC 9440 `Client-Cert` / `Client-Cert-Chain` readers, then the DER parser:
only Rfc9440Error and CertificateParseError, whatever the header says."""

from __future__ import annotations

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from admitd.certs.pem import CertificateParseError, certificates_from_der
    from admitd.certs.rfc9440 import Rfc9440Error, der_from_client_cert, ders_from_client_cert_chain

SEEDS = [b":MIIB:", b":AAEC:;a=1, :AAEC:", b":" + b"A" * 400 + b":", b"::, ::,"]


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    first = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 2000))
    rest = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
    try:
        ders = [der_from_client_cert(first), *ders_from_client_cert_chain(rest, max_count=8)]
        certificates_from_der(ders, max_count=9)
    except (Rfc9440Error, CertificateParseError):
        return
    except Exception as exc:
        if tolerated(exc):
            return
        raise


if __name__ == "__main__":
    main("rfc9440", one_input, SEEDS)
