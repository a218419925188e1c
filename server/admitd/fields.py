"""Typed readers for values in a YamlDocument; each error names file, line, key and fix."""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Mapping
from pathlib import Path

from admitd.errors import ConfigError
from admitd.yamlsource import KeyPath, YamlDocument

__all__ = ["Fields"]


class Fields:
    """Reads one mapping of a document, refusing keys it does not know."""

    def __init__(self, doc: YamlDocument, path: KeyPath, value: object, allowed: set[str]) -> None:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise doc.error(path, f"expected a mapping, got {_kind(value)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise doc.error(
                (*path, unknown[0]),
                "unknown key",
                f"allowed keys here: {', '.join(sorted(allowed))}",
            )
        self.doc = doc
        self.path = path
        self.raw: Mapping[str, object] = value

    def has(self, key: str) -> bool:
        return key in self.raw and self.raw[key] is not None

    def sub(self, key: str, allowed: set[str]) -> Fields:
        return Fields(self.doc, (*self.path, key), self.raw.get(key), allowed)

    def error(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return self.doc.error((*self.path, key), message, fix)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise self.error(key, "required key is missing", "set it to a string")
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {_kind(value)}")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if self.has(key) else None

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_kind(value)}")
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(key, f"expected an integer from {minimum} to {maximum}, got {value!r}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise self.error(key, f"expected a number >= {minimum}, got {value!r}")
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw.get(key, default)
        if value not in choices:
            raise self.error(key, f"unexpected value {value!r}", f"one of: {', '.join(choices)}")
        return str(value)

    def texts(self, key: str) -> list[str]:
        value = self.raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected a list of non-empty strings, got {_kind(value)}")
        return list(value)

    def address(self, key: str, default: str | None = None, *, example: str = "") -> str:
        """A listen address, HOST:PORT (port 1-65535)."""
        value = self.text(key, default)
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            hint = f"e.g. {example or default}"
            raise self.error(key, f"expected HOST:PORT, got {value!r}", hint)
        return value

    def private_file(self, key: str, fix: str) -> tuple[Path, bytes]:
        """The file `key` names (relative to the config file) and its bytes; it must be
        readable by its owner only, since it holds a secret."""
        path = Path(self.doc.file).resolve().parent / self.text(key)
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except OSError as exc:
            raise self.error(key, f"cannot read {path}: {exc.strerror}", fix) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise self.error(key, f"{path} is readable by group or others", f"chmod 600 {path}")
        return path, data

    def networks(
        self, key: str, example: str
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """A list of CIDR networks, host bits unset (`10.0.0.0/8`, not `10.0.0.1/8`)."""
        try:
            return tuple(ipaddress.ip_network(c, strict=True) for c in self.texts(key))
        except ValueError as exc:
            raise self.error(key, f"not a network: {exc}", f"e.g. {example}") from None

    def mapping_list(self, key: str) -> list[tuple[KeyPath, object]]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_kind(value)}")
        return [((*self.path, key, index), item) for index, item in enumerate(value)]


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
