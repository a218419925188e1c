"""The `kms:` configuration section, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.kms.base import DEFAULT_ALIASES, ManagedKms, check_alias
from admitd.yamlsource import YamlDocument

__all__ = [
    "DEFAULT_RECORD_PATTERNS",
    "SECTION_KEYS",
    "KmsConfig",
    "Pkcs11Config",
    "Provider",
    "kms_config_from_fields",
    "kms_config_from_mapping",
    "kms_from_config",
]

DEFAULT_RECORD_PATTERNS = ("admitd:*",)
SECTION_KEYS = {
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


# Only the defaulted fields are read: the dataclass is where each default is written.
_DEFAULTS = KmsConfig(provider=Provider.DEV)
# Unknown keys inside these two are let through, as they always were: refusing them now
# would stop a deployment that has one at its next restart.
_DEK_CACHE_KEYS = {"max_entries", "ttl_seconds"}
_PKCS11_KEYS = {"module", "token_label", "pin_env"}


def kms_config_from_fields(fields: Fields, *, dev_mode: bool) -> KmsConfig:
    """Validate the `kms:` section; without one, development builds fall back to `dev`."""
    provider = _provider(fields, dev_mode)
    aliases = tuple(
        check_alias(a, file=fields.doc.file, key="kms.aliases")
        for a in _text_list(fields, "aliases", _DEFAULTS.aliases)
    )
    cache = _lenient_sub(fields, "dek_cache", _DEK_CACHE_KEYS)
    return KmsConfig(
        provider=provider,
        aliases=aliases,
        keyring=Path(fields.text("keyring")) if provider is Provider.LOCAL else None,
        pkcs11=_pkcs11(_lenient_sub(fields, "pkcs11", _PKCS11_KEYS))
        if provider is Provider.PKCS11
        else None,
        dev_mode=dev_mode,
        dev_active_version=fields.integer(
            "dev_active_version", _DEFAULTS.dev_active_version, minimum=1
        ),
        record_patterns=_text_list(fields, "record_patterns", _DEFAULTS.record_patterns),
        dek_cache_entries=cache.integer("max_entries", _DEFAULTS.dek_cache_entries, minimum=1),
        dek_cache_ttl_seconds=_positive_number(
            cache, "ttl_seconds", _DEFAULTS.dek_cache_ttl_seconds
        ),
        file=fields.doc.file,
    )


def kms_config_from_mapping(raw: Mapping[str, object], *, file: str, dev_mode: bool) -> KmsConfig:
    """`kms_config_from_fields` for a section that is not part of a loaded document."""
    doc = YamlDocument(file, {"kms": raw}, {})
    return kms_config_from_fields(Fields(doc, ("kms",), raw, SECTION_KEYS), dev_mode=dev_mode)


def _provider(fields: Fields, dev_mode: bool) -> Provider:
    allowed = ", ".join(p.value for p in Provider)
    try:
        provider = Provider(fields.text("provider", Provider.DEV.value if dev_mode else None))
    except ValueError:
        raise fields.error("provider", f"must be one of {allowed}") from None
    if provider is Provider.DEV and not dev_mode:
        raise fields.error(
            "provider",
            "dev keys are derived from public constants and are refused outside a"
            " development build",
            fix="use provider: local or pkcs11 (or set dev_mode: true on a developer machine)",
        )
    return provider


def _pkcs11(section: Fields) -> Pkcs11Config:
    return Pkcs11Config(
        module=section.text("module"),
        token_label=section.text("token_label"),
        pin_env=section.text("pin_env"),
    )


def _lenient_sub(fields: Fields, key: str, known: set[str]) -> Fields:
    value = fields.raw.get(key)
    present = set(value) if isinstance(value, Mapping) else set()
    return fields.sub(key, known | present)


def _text_list(fields: Fields, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    # Never empty (no aliases would leave records without a key) and never a bare string,
    # unlike `Fields.texts`; a repeated entry counts once.
    value = fields.raw.get(key, list(default))
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fields.error(key, "must be a non-empty list of strings")
    return tuple(dict.fromkeys(value))


def _positive_number(fields: Fields, key: str, default: float) -> float:
    value = fields.raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise fields.error(key, f"must be a positive number, got {value!r}")
    return float(value)


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
