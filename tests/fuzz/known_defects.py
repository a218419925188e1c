"""Defects in admitd that these fuzz tests found, not yet fixed.

Each is pinned by an `xfail(strict=True)` test with a concrete input (in the target's test
module), so fixing it turns that test into an XPASS failure: then delete the marker, and
the entry here, which the property tests use to tolerate exactly this defect and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownDefect"]


@dataclass(frozen=True, slots=True)
class KnownDefect:
    name: str
    exception: type[BaseException]
    message: str  # a substring of str(exception)

    def matches(self, exc: BaseException) -> bool:
        return isinstance(exc, self.exception) and self.message in str(exc)

    @property
    def reason(self) -> str:
        return f"known defect {self.name} (tests/fuzz/known_defects.py)"


# web/return_to.py ReturnToSigner.verify, web/step_up_reason.py verify_reason:
# hmac.compare_digest on two `str` raises for non-ASCII text (the MAC part is the client's).
NON_ASCII_MAC = KnownDefect("non-ascii-mac", TypeError, "non-ASCII characters")
# web/step_up_reason.py verify_reason: str.isdigit() is true for "²" and other digits that
# int() refuses.
NON_DECIMAL_DIGIT = KnownDefect("non-decimal-digit", ValueError, "invalid literal for int()")
# web/csrf.py is_valid_csrf and web/return_to.py _mac: `.encode()` of text holding lone
# surrogates, which aiohttp produces for invalid UTF-8 in headers (surrogateescape).
SURROGATE_ENCODE = KnownDefect("surrogate-encode", UnicodeEncodeError, "surrogates not allowed")
# jwt/verifier.py JwtVerifier.verify: json.loads of a deeply nested payload raises
# RecursionError, which is not caught, so the Check takes the fail-closed path.
JWT_NESTED_PAYLOAD = KnownDefect("jwt-nested-payload", RecursionError, "maximum recursion depth")
# yamlsource.py _scalar: `!!bool foo` raises KeyError, `!!timestamp foo` AttributeError from
# PyYAML's constructors; _scalar maps only YAMLError, ValueError, TypeError and IndexError.
YAML_BOOL_TAG = KnownDefect("yaml-tag-constructor", KeyError, "")
YAML_TIMESTAMP_TAG = KnownDefect("yaml-tag-constructor", AttributeError, "groupdict")
# config.py _path: Path.exists() raises OSError (ENAMETOOLONG) for a `policies:` value longer
# than the file system allows, and nothing maps it to a ConfigError.
CONFIG_PATH_TOO_LONG = KnownDefect("config-path-too-long", OSError, "File name too long")
# audit/sources.py _lines: json.loads of a deeply nested export line raises RecursionError.
AUDIT_NESTED_LINE = KnownDefect("audit-nested-line", RecursionError, "maximum recursion depth")
# audit/sources.py _record_from_export / audit/checkpoint.py _message: an export line whose
# JSON escapes a lone surrogate ("\ud800") re-encodes to UTF-8 with an uncaught error.
AUDIT_SURROGATE = KnownDefect("audit-surrogate", UnicodeEncodeError, "surrogates not allowed")


def without_signature_bits_count(der: bytes) -> bytes:
    """`der` with the unused-bits octet of its signature BIT STRING set to 0.

    Known defect signature-unused-bits (certs/pem.py, via cryptography's parser): a
    certificate whose signatureValue BIT STRING says 1-7 unused bits (the padding bits being
    zero) parses and verifies as the certificate it was copied from, with another DER and so
    another SHA-256 fingerprint. OpenSSL and BoringSSL refuse it
    (X509_R_INVALID_BIT_STRING_BITS_LEFT). Oracles compare DER through this function until
    the defect is fixed; then delete it and its callers.
    """
    if len(der) < 80 or der[-1] & 1:
        return der
    for size in (70, 71, 72):  # an ECDSA P-256 signature's DER size (SEQUENCE of r, s)
        at = len(der) - size - 1
        if der[at - 2] == 0x03 and der[at - 1] == size + 1 and 0 < der[at] < 8:
            return der[:at] + b"\x00" + der[at + 1 :]
    return der
