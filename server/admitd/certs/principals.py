"""Principals as admitd compares them: SAN URIs and DNS names as written, subjects normalised."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cryptography import x509

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = ["principal_from_text"]


def principal_from_text(fields: Fields, key: str, value: str) -> str:
    """A principal as the guard compares it; `key` names the list in errors."""
    if "://" in value or "=" not in value:
        return value  # a SAN URI or DNS name: compared as written
    # Normalise through cryptography so "CN=a, O=b" and "CN=a,O=b" compare equal.
    try:
        compact = re.sub(r"(?<!\\)([,+=])\s+", r"\1", value.strip())
        return x509.Name.from_rfc4514_string(compact).rfc4514_string()
    except ValueError:
        raise fields.error(
            key, f"not an RFC 4514 name: {value!r}", "e.g. 'CN=login,O=Example'"
        ) from None
