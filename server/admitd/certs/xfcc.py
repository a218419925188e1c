"""Parse Envoy's `x-forwarded-client-cert` header.

Format (Envoy docs, "x-forwarded-client-cert"): comma-separated elements, one
per proxy hop; each element is `;`-separated `Key=Value` pairs; a value may be
double-quoted, and inside quotes `\\"` is a literal quote and `,`/`;`/`=` are
plain characters. Keys: By, Hash, Cert, Chain, Subject, URI, DNS.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["XfccError", "parse_xfcc"]

_KNOWN_KEYS = frozenset({"by", "hash", "cert", "chain", "subject", "uri", "dns"})


class XfccError(ValueError):
    """The header does not follow the XFCC grammar."""


def parse_xfcc(header: str, *, max_elements: int = 16) -> list[Mapping[str, str]]:
    """Return one mapping (lower-case keys) per element, in header order.

    `DNS` may repeat inside one element; its values are joined with ",".
    Unknown keys are an error, so a typo cannot silently drop the certificate.
    """
    elements: list[Mapping[str, str]] = []
    for raw_element in _split(header, ","):
        if len(elements) == max_elements:
            raise XfccError(f"more than {max_elements} elements")
        elements.append(_parse_element(raw_element))
    return elements


def _parse_element(raw: str) -> Mapping[str, str]:
    pairs: dict[str, str] = {}
    for raw_pair in _split(raw, ";"):
        key, sep, value = raw_pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in _KNOWN_KEYS:
            raise XfccError(f"unknown or malformed pair {raw_pair[:40]!r}")
        value = _unquote(value.strip())
        if key == "dns" and key in pairs:
            value = pairs[key] + "," + value
        elif key in pairs:
            raise XfccError(f"duplicate key {key!r}")
        pairs[key] = value
    if not pairs:
        raise XfccError("empty element")
    return pairs


def _split(text: str, separator: str) -> list[str]:
    """Split on `separator` outside double quotes; quotes must balance."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted or escaped:
        raise XfccError("unbalanced quotes")
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part] if text.strip() else []


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    if '"' in value:
        raise XfccError("stray quote in unquoted value")
    return value
