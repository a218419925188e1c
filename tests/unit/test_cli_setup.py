"""`--config` / `--redis-url` and the config-file sections the `keys` and `audit` commands read."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from admitd.cli_setup import (
    config_and_redis_options,
    config_file,
    required_config,
    required_redis_url,
)
from admitd.errors import ConfigError
from admitd.kms import DEFAULT_ALIASES, Provider


def parser() -> argparse.ArgumentParser:
    """Built after the test has set the environment: the defaults are read then."""
    common = config_and_redis_options(config_help="config", redis_help="redis")
    return argparse.ArgumentParser(parents=[common])


@pytest.mark.parametrize(
    ("environ", "argv", "config", "redis_url"),
    [
        ({}, [], None, None),
        (
            {"ADMITD_CONFIG": "/etc/a.yaml", "ADMITD_REDIS_URL": "redis://r"},
            [],
            Path("/etc/a.yaml"),
            "redis://r",
        ),
        ({"ADMITD_CONFIG": "/etc/a.yaml"}, ["--config", "b.yaml"], Path("b.yaml"), None),
        ({"ADMITD_CONFIG": ""}, [], None, None),
    ],
    ids=["unset", "environment", "flag-wins", "empty-is-unset"],
)
def test_options_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    argv: list[str],
    config: Path | None,
    redis_url: str | None,
) -> None:
    monkeypatch.delenv("ADMITD_CONFIG", raising=False)
    monkeypatch.delenv("ADMITD_REDIS_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    args = parser().parse_args(argv)
    assert (args.config, args.redis_url) == (config, redis_url)


def test_missing_config_and_redis_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="no configuration file given") as caught:
        required_config(argparse.Namespace(config=None))
    assert caught.value.fix == "pass --config or set ADMITD_CONFIG"
    with pytest.raises(ConfigError, match="no Redis given") as caught:
        required_redis_url("", "pass --redis-url")
    assert caught.value.fix == "pass --redis-url"
    assert required_config(argparse.Namespace(config=Path("a.yaml"))) == Path("a.yaml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "admitd.yaml"
    path.write_text(text)
    return path


def test_kms_section_falls_back_to_dev_in_a_development_build(tmp_path: Path) -> None:
    file = config_file(write(tmp_path, "dev_mode: true\nredis_url: redis://x\n"))
    kms = file.kms()
    assert (kms.provider, kms.aliases, kms.file) == (
        Provider.DEV,
        DEFAULT_ALIASES,
        file.top.doc.file,
    )
    assert not file.has("kms")
    assert file.redis_url() == "redis://x"


def test_kms_errors_name_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: x\nkms:\n  provider: local\n  keyring: /k\n  aliases: []\n")
    with pytest.raises(ConfigError) as caught:
        config_file(path).kms()
    assert (caught.value.file, caught.value.line, caught.value.key) == (
        str(path),
        5,
        "kms.aliases",
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [("dev_mode: 'yes'\n", "dev_mode"), ("kms: [local]\n", "kms")],
    ids=["dev-mode-not-a-flag", "kms-not-a-mapping"],
)
def test_malformed_top_level_values_are_refused(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_file(write(tmp_path, text)).kms()
    assert caught.value.key == key


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        config_file(write(tmp_path, "- a\n- b\n"))


def test_other_sections_are_not_validated_here(tmp_path: Path) -> None:
    file = config_file(write(tmp_path, "tls: {trust_bundle: missing.pem}\ncolour: blue\n"))
    assert file.section("audit", {"stream_key"}).text("stream_key", "admitd:audit") == (
        "admitd:audit"
    )
