"""Configuration: defaults, environment overrides, and errors that say where and how to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from admitd.config import load_config
from admitd.errors import ConfigError


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    path = tmp_path / "admitd.yaml"
    path.write_text("policies: policies.yaml\ntls:\n  trust_bundle: ca.pem\n")
    return path


def test_defaults_and_relative_paths(config_file: Path) -> None:
    config = load_config(config_file, environ={})
    assert config.listen == "127.0.0.1:9001" and config.metrics_listen == "127.0.0.1:9464"
    assert config.tls.trust_bundles == (config_file.parent / "ca.pem",)
    assert config.redis_url is None and not config.dev_mode


def test_environment_overrides_file(config_file: Path) -> None:
    env = {
        "ADMITD_LISTEN": "0.0.0.0:7000",
        "ADMITD_TLS__MAX_CHAIN_LENGTH": "3",
        "ADMITD_REDIS_URL": "redis://127.0.0.1:6379/0",
        "HOME": "/root",
    }
    config = load_config(config_file, environ=env)
    assert (config.listen, config.tls.max_chain_length, config.redis_url) == (
        "0.0.0.0:7000",
        3,
        "redis://127.0.0.1:6379/0",
    )


def test_bad_environment_value_names_the_variable(config_file: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"environment variable ADMITD_TLS__MAX_CHAIN_LENGTH: tls.max_chain_length: expected an integer",
    ):
        load_config(config_file, environ={"ADMITD_TLS__MAX_CHAIN_LENGTH": "many"})


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            "listen: nowhere\n", r"admitd.yaml:4: listen: expected HOST:PORT", id="listen"
        ),
        pytest.param("tls_typo: 1\n", r"admitd.yaml:4: tls_typo: unknown key", id="unknown"),
        pytest.param("redis_url: http://x\n", r"redis_url: unsupported scheme", id="redis-scheme"),
        pytest.param(
            "trusted_proxies: [{name: p}]\n",
            r"trusted_proxies\[0\].principals: a trusted proxy needs",
            id="proxy",
        ),
        pytest.param(
            "trusted_proxies: [{cidrs: [10.0.0.1/8]}]\n", r"cidrs: not a network", id="proxy-cidr"
        ),
        pytest.param(
            "trusted_proxies: [{cidrs: [10.0.0.0/8], header: forwarded}]\n",
            r"header: unexpected value 'forwarded'",
            id="proxy-header",
        ),
    ],
)
def test_errors_name_file_line_and_key(config_file: Path, extra: str, expected: str) -> None:
    config_file.write_text(config_file.read_text() + extra)
    with pytest.raises(ConfigError, match=expected):
        load_config(config_file, environ={})


def test_missing_trust_bundle_key(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("routes: []\n")
    path = tmp_path / "c.yaml"
    path.write_text("policies: p.yaml\n")
    with pytest.raises(ConfigError, match=r"c.yaml: tls.trust_bundle: required"):
        load_config(path, environ={})


def test_the_fuzz_suites_variables_are_not_overrides(config_file: Path) -> None:
    """tests/fuzz reads ADMITD_FUZZ_COUNT, _SEED, ... (docs/fuzzing.md): a server started
    beside them must not take them for config keys (`fuzz_count: unknown key`)."""
    env = {"ADMITD_FUZZ_COUNT": "100000", "ADMITD_FUZZ_SEED": "7", "ADMITD_FUZZ_DIR": "/tmp/x"}
    assert load_config(config_file, environ=env).listen == "127.0.0.1:9001"
    with pytest.raises(ConfigError, match=r"environment variable ADMITD_FUZZ: fuzz: unknown key"):
        load_config(config_file, environ={"ADMITD_FUZZ": "1"})  # only the prefix is ignored


@pytest.mark.parametrize("tag", ["!!bool", "!!timestamp"])
def test_an_environment_value_its_tag_cannot_read_names_the_variable(
    config_file: Path, tag: str
) -> None:
    """PyYAML's constructors raise KeyError / AttributeError for these, not YAMLError."""
    with pytest.raises(
        ConfigError, match=r"environment variable ADMITD_DEV_MODE: cannot read this value"
    ) as info:
        load_config(config_file, environ={"ADMITD_DEV_MODE": f"{tag} maybe"})
    assert info.value.fix


_NAME_TOO_LONG = "p" * 300  # one path component over NAME_MAX (255): ENAMETOOLONG


@pytest.mark.parametrize(
    ("section", "key"),
    [
        pytest.param("", "policies", id="policies"),
        pytest.param(
            "tls_listen: {address: 127.0.0.1:9443, server_cert: LONG, server_key: LONG}\n",
            "tls_listen.server_cert",
            id="tls_listen",
        ),
        pytest.param(
            "admin: {principals: [spiffe://example.org/sa/login], server_cert: LONG,"
            " server_key: LONG}\n",
            "admin.server_cert",
            id="admin",
        ),
        pytest.param("audit: {spool_file: LONG}\n", "audit.spool_file", id="audit-spool"),
    ],
)
def test_a_path_too_long_for_the_file_system_names_the_key(
    config_file: Path, section: str, key: str
) -> None:
    """Path.exists() and is_file() answer False only for a missing file; ENAMETOOLONG
    raised OSError through them, and start-up ended in a traceback."""
    text = config_file.read_text() + section.replace("LONG", _NAME_TOO_LONG)
    if key == "policies":
        text = text.replace("policies: policies.yaml", f"policies: {_NAME_TOO_LONG}")
    config_file.write_text(text)
    with pytest.raises(ConfigError, match=rf"admitd.yaml:\d+: {key}: cannot use .*too long"):
        load_config(config_file, environ={})
