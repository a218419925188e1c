"""Validation of the `kms:` configuration section and the provider factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.kms import (
    DEFAULT_ALIASES,
    DevKms,
    KmsConfig,
    LocalKms,
    Pkcs11Config,
    Provider,
    create_keyring_file,
    kms_config_from_mapping,
    kms_from_config,
)

FILE = "/etc/admitd/admitd.yaml"


def config(raw: dict[str, object], *, dev_mode: bool = False) -> KmsConfig:
    return kms_config_from_mapping(raw, file=FILE, dev_mode=dev_mode)


def test_local_defaults() -> None:
    cfg = config({"provider": "local", "keyring": "/k.json"})
    assert cfg == KmsConfig(
        provider=Provider.LOCAL, keyring=Path("/k.json"), aliases=DEFAULT_ALIASES, file=FILE
    )


def test_full_pkcs11() -> None:
    cfg = config(
        {
            "provider": "pkcs11",
            "pkcs11": {"module": "/lib.so", "token_label": "admitd", "pin_env": "PIN"},
            "aliases": ["kms/audit-log"],
            "record_patterns": ["admitd:totp:*", "admitd:audit:*"],
            "dek_cache": {"max_entries": 10, "ttl_seconds": 1.5},
        }
    )
    assert cfg.pkcs11 == Pkcs11Config("/lib.so", "admitd", "PIN")
    assert cfg.aliases == ("kms/audit-log",)
    assert cfg.record_patterns == ("admitd:totp:*", "admitd:audit:*")
    assert (cfg.dek_cache_entries, cfg.dek_cache_ttl_seconds) == (10, 1.5)


def test_development_build_falls_back_to_dev() -> None:
    assert config({}, dev_mode=True).provider is Provider.DEV


@pytest.mark.parametrize(
    ("raw", "key", "text"),
    [
        ({}, "kms.provider", "required"),
        ({"provider": "aws"}, "kms.provider", "local, dev, pkcs11"),
        ({"provider": "dev"}, "kms.provider", "development build"),
        ({"provider": "local"}, "kms.keyring", "required"),
        ({"provider": "local", "keyring": "/k", "colour": 1}, "kms.colour", "unknown key"),
        ({"provider": "local", "keyring": "/k", "aliases": ["audit"]}, "kms.aliases", "kms/"),
        ({"provider": "local", "keyring": "/k", "aliases": []}, "kms.aliases", "non-empty"),
        ({"provider": "pkcs11"}, "kms.pkcs11.module", "required"),
        ({"provider": "pkcs11", "pkcs11": "x"}, "kms.pkcs11", "mapping"),
        (
            {"provider": "local", "keyring": "/k", "dek_cache": {"ttl_seconds": 0}},
            "kms.dek_cache.ttl_seconds",
            "positive",
        ),
        (
            {"provider": "local", "keyring": "/k", "dek_cache": {"max_entries": 1.5}},
            "kms.dek_cache.max_entries",
            "integer",
        ),
    ],
    ids=lambda v: str(v)[:30],
)
def test_errors_name_file_key_and_problem(raw: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(raw)
    assert caught.value.file == FILE
    assert caught.value.key == key
    assert text in str(caught.value)


def test_dev_refusal_names_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        config({"provider": "dev"})
    assert caught.value.fix and "local or pkcs11" in caught.value.fix


def test_factory_builds_local_and_checks_aliases(tmp_path: Path) -> None:
    keyring = tmp_path / "k.json"
    create_keyring_file(keyring, ["kms/audit-log"])
    cfg = config({"provider": "local", "keyring": str(keyring), "aliases": ["kms/audit-log"]})
    assert isinstance(kms_from_config(cfg), LocalKms)
    wider = config({"provider": "local", "keyring": str(keyring)})
    with pytest.raises(ConfigError, match="keys init"):
        kms_from_config(wider)


def test_factory_builds_dev() -> None:
    assert isinstance(kms_from_config(config({}, dev_mode=True)), DevKms)


def test_factory_pkcs11_needs_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADMITD_TEST_PIN", raising=False)
    cfg = config(
        {
            "provider": "pkcs11",
            "pkcs11": {"module": "/x.so", "token_label": "t", "pin_env": "ADMITD_TEST_PIN"},
        }
    )
    with pytest.raises(ConfigError) as caught:
        kms_from_config(cfg)
    assert caught.value.key == "kms.pkcs11.pin_env"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"provider": "local", "keyring": "/k", "aliases": "kms/audit-log"}, "kms.aliases"),
        ({"provider": "local", "keyring": "/k", "record_patterns": None}, "kms.record_patterns"),
        ({"provider": "local", "keyring": "/k", "dev_active_version": 0}, "kms.dev_active_version"),
        (
            {"provider": "local", "keyring": "/k", "dek_cache": {"ttl_seconds": True}},
            "kms.dek_cache.ttl_seconds",
        ),
    ],
    ids=["bare-string-list", "null-list", "zero-version", "boolean-seconds"],
)
def test_lists_are_lists_and_numbers_positive(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(raw)
    assert caught.value.key == key


def test_repeated_entries_count_once() -> None:
    cfg = config(
        {"provider": "local", "keyring": "/k", "record_patterns": ["admitd:*", "admitd:*"]}
    )
    assert cfg.record_patterns == ("admitd:*",)


def test_unknown_keys_inside_pkcs11_and_dek_cache_are_let_through() -> None:
    cfg = config(
        {
            "provider": "pkcs11",
            "pkcs11": {"module": "/x.so", "token_label": "t", "pin_env": "PIN", "slot": 0},
            "dek_cache": {"max_entries": 8, "shards": 2},
        }
    )
    assert cfg.pkcs11 == Pkcs11Config("/x.so", "t", "PIN")
    assert cfg.dek_cache_entries == 8
