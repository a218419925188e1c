"""Every exception `cryptography` raises on a hostile certificate, named in one place.

A client chooses the certificate bytes, so whatever `cryptography` raises while
decoding or verifying one is the client's problem (`malformed`), never admitd's.
Most errors are ValueError, but several are plain Exception subclasses (a bad
version number raises InvalidVersion, a repeated extension DuplicateExtension),
and the parsing is lazy: a subject with a reserved tag only fails when read.
What `cryptography` merely warns about (a serial number that is not positive,
which RFC 5280 4.1.2.2 forbids) is refused too, inside `strict_decoding()`.
`tests/unit/test_malformed_certificates.py` checks every exception class of
`cryptography.x509`, `cryptography.exceptions` and `x509.verification` is covered.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography import exceptions, x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import VerificationError

__all__ = ["CERTIFICATE_ERRORS", "decoding_detail", "strict_decoding"]

CERTIFICATE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,  # ASN.1 parse errors, unsupported encodings, bad PEM
    TypeError,  # e.g. a key type an operation does not support
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    x509.ExtensionNotFound,
    x509.AttributeNotFound,
    VerificationError,
    exceptions.UnsupportedAlgorithm,  # an unknown public-key or signature algorithm
    exceptions.InvalidSignature,
    exceptions.InvalidKey,
    exceptions.InvalidTag,
    exceptions.InternalError,  # OpenSSL refused a value admitd passed through
    exceptions.AlreadyFinalized,
    exceptions.AlreadyUpdated,
    exceptions.NotYetFinalized,
    CryptographyDeprecationWarning,  # raised inside strict_decoding()
)


@contextmanager
def strict_decoding() -> Iterator[None]:
    """Turn `cryptography`'s "this will be an error in a future release" into one now."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        yield


def decoding_detail(exc: Exception) -> str:
    """A short, client-safe description (no certificate bytes, first line only)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot decode the certificate: {message[:160]}"
