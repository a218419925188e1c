"""The `kms:` configuration section, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from admitd.errors import ConfigError
from admitd.kms.base import DEFAULT_ALIASES, ManagedKms, check_alias

__all__ = [
    "DEFAULT_RECORD_PATTERNS",
    "KmsConfig",
    "Pkcs11Config",
    "Provider",
    "kms_config_from_mapping",
    "kms_from_config",
]

DEFAULT_RECORD_PATTERNS = ("admitd:*",)
_KEYS = {
    "provider",
    "keyring",
    "pkcs11",
    "aliases",
    "record_patterns",
    "dek_cache",
    "dev_active_version",
}


class Provider(StrEnum):
    LOCAL = "local"
    DEV = "dev"
    PKCS11 = "pkcs11"


@dataclass(frozen=True, slots=True)
class Pkcs11Config:
    module: str
    token_label: str
    pin_env: str  # the PIN itself never sits in the config file


@dataclass(frozen=True, slots=True)
class KmsConfig:
    """Which provider holds the master keys, for which aliases, and how records are found."""

    provider: Provider
    aliases: tuple[str, ...] = DEFAULT_ALIASES
    keyring: Path | None = None
    pkcs11: Pkcs11Config | None = None
    dev_mode: bool = False
    dev_active_version: int = 1
    record_patterns: tuple[str, ...] = DEFAULT_RECORD_PATTERNS
    dek_cache_entries: int = 4096
    dek_cache_ttl_seconds: float = 60.0
    file: str = "<config>"


class _Reader:
    """Typed access to one mapping, raising `ConfigError` that names file and key."""

    def __init__(self, raw: Mapping[str, object], file: str, prefix: str) -> None:
        self.raw, self.file, self.prefix = raw, file, prefix

    def error(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, key=f"{self.prefix}{key}", fix=fix)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, "is required and must be a non-empty string")
        return value

    def number(self, key: str, default: float, *, integer: bool) -> float:
        value = self.raw.get(key, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            kind = "integer" if integer else "number"
            raise self.error(key, f"must be a positive {kind}, got {value!r}")
        return value

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw.get(key, list(default))
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a non-empty list of strings")
        return tuple(dict.fromkeys(value))

    def section(self, key: str) -> _Reader:
        value = self.raw.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a mapping")
        return _Reader(value, self.file, f"{self.prefix}{key}.")


def kms_config_from_mapping(raw: Mapping[str, object], *, file: str, dev_mode: bool) -> KmsConfig:
    """Validate the `kms:` section; without one, development builds fall back to `dev`."""
    top = _Reader(raw, file, "kms.")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise top.error(unknown[0], "unknown key", fix=f"allowed keys: {', '.join(sorted(_KEYS))}")
    provider = _provider(top, dev_mode)
    aliases = tuple(
        check_alias(a, file=file, key="kms.aliases")
        for a in top.strings("aliases", DEFAULT_ALIASES)
    )
    cache = top.section("dek_cache")
    return KmsConfig(
        provider=provider,
        aliases=aliases,
        keyring=Path(top.text("keyring")) if provider is Provider.LOCAL else None,
        pkcs11=_pkcs11(top.section("pkcs11")) if provider is Provider.PKCS11 else None,
        dev_mode=dev_mode,
        dev_active_version=int(top.number("dev_active_version", 1, integer=True)),
        record_patterns=top.strings("record_patterns", DEFAULT_RECORD_PATTERNS),
        dek_cache_entries=int(cache.number("max_entries", 4096, integer=True)),
        dek_cache_ttl_seconds=cache.number("ttl_seconds", 60.0, integer=False),
        file=file,
    )


def _provider(top: _Reader, dev_mode: bool) -> Provider:
    allowed = ", ".join(p.value for p in Provider)
    try:
        provider = Provider(top.text("provider", Provider.DEV.value if dev_mode else None))
    except ValueError:
        raise top.error("provider", f"must be one of {allowed}") from None
    if provider is Provider.DEV and not dev_mode:
        raise top.error(
            "provider",
            "dev keys are derived from public constants and are refused outside a"
            " development build",
            fix="use provider: local or pkcs11 (or set dev_mode: true on a developer machine)",
        )
    return provider


def _pkcs11(section: _Reader) -> Pkcs11Config:
    return Pkcs11Config(
        module=section.text("module"),
        token_label=section.text("token_label"),
        pin_env=section.text("pin_env"),
    )


def kms_from_config(cfg: KmsConfig, *, require_aliases: bool = True) -> ManagedKms:
    """Build the configured provider; `ConfigError` if it cannot start as configured.

    With `require_aliases`, every configured alias must already have a key, so a
    missing one fails at start-up rather than at the first seal.
    """
    kms = _provider_kms(cfg)
    missing = sorted(set(cfg.aliases) - set(kms.aliases()))
    if require_aliases and missing:
        raise ConfigError(
            f"no master key for alias(es) {', '.join(missing)}",
            file=str(cfg.keyring) if cfg.keyring else cfg.file,
            key="kms.aliases",
            fix="run `admitd keys init --config <admitd.yaml>` to create them",
        )
    return kms


def _provider_kms(cfg: KmsConfig) -> ManagedKms:
    if cfg.provider is Provider.DEV:
        from admitd.kms.dev import DevKms

        return DevKms(cfg.aliases, dev_mode=cfg.dev_mode, active_version=cfg.dev_active_version)
    if cfg.provider is Provider.PKCS11:
        return _pkcs11_kms(cfg)
    from admitd.kms.local import LocalKms

    assert cfg.keyring is not None  # guaranteed by kms_config_from_mapping
    return LocalKms(cfg.keyring)


def _pkcs11_kms(cfg: KmsConfig) -> ManagedKms:
    # Imported here: python-pkcs11 is an optional extra (`admitd[hsm]`).
    try:
        from admitd.kms.pkcs11 import Pkcs11Kms
    except ImportError:
        raise ConfigError(
            "provider pkcs11 needs python-pkcs11",
            file=cfg.file,
            key="kms.provider",
            fix="pip install 'admitd[hsm]'",
        ) from None

    assert cfg.pkcs11 is not None  # guaranteed by kms_config_from_mapping
    pin = os.environ.get(cfg.pkcs11.pin_env)
    if not pin:
        raise ConfigError(
            f"environment variable {cfg.pkcs11.pin_env} (the token PIN) is not set",
            file=cfg.file,
            key="kms.pkcs11.pin_env",
            fix=f"export {cfg.pkcs11.pin_env} before starting admitd",
        )
    return Pkcs11Kms(cfg.pkcs11.module, cfg.pkcs11.token_label, pin)
